"""One side of ``ignn-lab bench compare``: runs benchmark rows on request, with the ``ignn_lab`` of one tree.

Started as a script (``python _compare_child.py``) with ``PYTHONPATH`` set to the tree being measured, so it
imports nothing of the tree it was copied from and uses only the API both trees share:
``ignn_lab.graph.cross_scale_knn`` and ``ignn_lab.models.build``. It reads one JSON request per line on stdin,
runs that row once, and answers one ``RESULT {json}`` line on stdout: the seconds the call took and a hash of
its result tensors.
"""

import hashlib
import json
import sys
import time
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # this file's folder belongs to the other tree

import torch  # noqa: E402


def _digest(*tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().contiguous().cpu()
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class Rows:
    """The callables of the rows seen so far (inputs loaded and models built once per row)."""

    def __init__(self):
        self._fns = {}

    def get(self, req: dict):
        if req["id"] not in self._fns:
            self._fns[req["id"]] = self._make(req)
        return self._fns[req["id"]]

    @staticmethod
    def _make(req: dict):
        data = torch.load(req["inputs"], weights_only=True)
        if req["kind"] == "knn":
            from ignn_lab.graph import cross_scale_knn

            q, s = data["query"], data["son"]

            def knn():
                g = cross_scale_knn(q, s, k=req["k"], window=req["window"], graph_scale=req["graph_scale"],
                                    backend="auto")
                return _digest(g.index, g.distance)
            return knn
        from ignn_lab.models import build

        net = build(req["model"], req["scale"], **req.get("overrides", {})).eval()
        net.load_state_dict(data["state_dict"])
        lr = data["lr"]

        def forward():
            with torch.inference_mode():
                return _digest(net(lr))
        return forward


def main() -> None:
    rows = Rows()
    for line in sys.stdin:
        req = json.loads(line)
        try:
            fn = rows.get(req)
            t0 = time.perf_counter()
            digest = fn()
            reply = {"seconds": time.perf_counter() - t0, "hash": digest}
        except Exception as exc:  # reported in the row; the other rows go on
            reply = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        print("RESULT " + json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
