"""kNN benchmark (``ignn-lab bench knn --json OUT``): every backend against the naive released-style search.

The naive reference is timed in the same run: the full M×N distance matrix ``−2·Y·Xᵀ + ‖y‖² + ‖x‖²``, then
the window columns gathered with the released table ``I`` (+1e-5), then ``topk``, as the released training
path does. Shapes: a ×2 training batch (16 × LR 48²), Set14-size ×2 (LR 256×384), Urban100-size ×2
(LR 384×512) and ×4 (LR 192×256); 27-d (``pixel``) and 576-d (``vgg-random``, 64 channels) patches; window 30
and whole image. Inputs are real images (Urban100 / Set14 under the data root, else scikit-image's astronaut).

Times are medians of repeated runs (the first run is a warm-up, unless it took over ``SLOW_S``). Peak memory
is the max RSS of a subprocess that builds the inputs and runs one search. The JSON also records the machine
load (``os.getloadavg()``, CPU count, torch threads) and a GEMM calibration, because timings on a shared
machine are noisy. A bar chart is written beside the JSON (same name, ``.png``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from ignn_lab.data.io import atomic_write_bytes
from ignn_lab.graph import cross_scale_knn, kernels
from ignn_lab.graph.patches import im2patch
from ignn_lab.graph.window import effective_window, window_table
from ignn_lab.lab._machine import machine_info, proc_status_mb
from ignn_lab.viz import save_figure

__all__ = ["run", "naive_knn", "to_markdown", "measure_memory", "Case", "CASES", "QUICK_CASES", "main"]

K = 5
WINDOW = 30
SLOW_S = 5.0  # a first run slower than this is not repeated
#: Pseudo-backend: ``torch`` with the C kernels switched off (the engine before them), timed in the same run.
PURE = "torch-pure"
REFERENCE_MAX_WORK = 3e8  # elements (queries × candidates × D) above which the reference backend is skipped
EMBEDDINGS = {"pixel": 27, "vgg-random": 576}  # embedding -> patch dimension
SPEED_CASE = ("urban-x2", "vgg-random")  # the speed target's shape: 576-d, k 5, window 30, LR 384×512


@dataclass(frozen=True)
class Case:
    """One benchmark shape: ``batch`` LR images of ``lr_hw`` (H, W) at SR ``scale`` (graph scale 2 or 3)."""

    name: str
    batch: int
    lr_hw: tuple[int, int]
    scale: int
    source: str  # "train", "set14" or "urban"

    @property
    def graph_scale(self) -> int:
        return 3 if self.scale == 3 else 2


CASES = (
    Case("train-x2", 16, (48, 48), 2, "train"),
    Case("set14-x2", 1, (256, 384), 2, "set14"),
    Case("urban-x2", 1, (384, 512), 2, "urban"),
    Case("urban-x4", 1, (192, 256), 4, "urban"),
)
QUICK_CASES = (
    Case("train-x2-quick", 2, (48, 48), 2, "train"),
    Case("small-x2", 1, (64, 96), 2, "urban"),
)


# ------------------------------------------------------------------------------------------------ inputs


def _hr_image(source: str, hw: tuple[int, int], data_root: str | None) -> tuple[Tensor, str]:
    """A uint8 3×H×W HR image of at least ``hw`` (H, W), and where it came from."""
    from ignn_lab.data.datasets import default_data_root, list_images, load_image
    from ignn_lab.data.imresize import imresize

    wanted = {"urban": ("Urban100", "img_012"), "set14": ("Set14", "monarch"),
              "train": ("Set14", "baboon")}[source]
    root = data_root or default_data_root()
    img, origin = None, ""
    if root is not None:
        try:
            rec = next(r for r in list_images(wanted[0], root) if r.name == wanted[1])
            img, origin = load_image(rec), f"{wanted[0]}/{wanted[1]}"
        except (FileNotFoundError, StopIteration, ValueError):
            img = None
    if img is None:
        from skimage import data

        img, origin = data.astronaut(), "skimage/astronaut"
    t = torch.from_numpy(img).permute(2, 0, 1).contiguous() if img.ndim == 3 else torch.from_numpy(img)[None]
    t = t.expand(3, -1, -1) if t.shape[0] == 1 else t
    if t.shape[1] < t.shape[2] and hw[0] > hw[1]:
        t = t.transpose(1, 2)
    if t.shape[1] < hw[0] or t.shape[2] < hw[1]:
        f = max(hw[0] / t.shape[1], hw[1] / t.shape[2])
        size = (max(hw[0], round(t.shape[1] * f)), max(hw[1], round(t.shape[2] * f)))
        t = imresize(t.contiguous(), size=size)
        origin += " (upscaled)"
    return t[:, : hw[0], : hw[1]].contiguous(), origin


def make_inputs(case: Case, embedding: str, data_root: str | None = None) -> tuple[Tensor, Tensor, str]:
    """Query and son embeddings (B×C×H×W float32) for a case, and the image they came from."""
    from ignn_lab.data.degrade import make_son
    from ignn_lab.data.imresize import imresize
    from ignn_lab.graph.embed import build_embedding, embed

    h, w = case.lr_hw
    if case.source == "train":  # a batch of LR crops from one image
        hr, origin = _hr_image("train", (case.scale * 4 * h, case.scale * 4 * w), data_root)
        lr_full = imresize(hr, 1 / case.scale).float() / 255
        gen = torch.Generator().manual_seed(0)
        ys = torch.randint(0, lr_full.shape[1] - h + 1, (case.batch,), generator=gen).tolist()
        xs = torch.randint(0, lr_full.shape[2] - w + 1, (case.batch,), generator=gen).tolist()
        lr = torch.stack([lr_full[:, y: y + h, x: x + w] for y, x in zip(ys, xs)])
    else:
        hr, origin = _hr_image(case.source, (case.scale * h, case.scale * w), data_root)
        lr = (imresize(hr, 1 / case.scale).float() / 255)[None].expand(case.batch, -1, -1, -1).contiguous()
    son = make_son(lr, case.graph_scale)
    net = build_embedding(embedding)  # type: ignore[arg-type]
    return embed(lr, embedding, net=net), embed(son, embedding, net=net), origin  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ naive search


def naive_knn(query: Tensor, son: Tensor, *, k: int = K, window: int | None = WINDOW, graph_scale: int = 2,
              patch_size: int = 3, stride: int = 2) -> tuple[Tensor, Tensor]:
    """The released training path, written as it is there: full M×N matrix, window gather (+1e-5), topk.

    ``D = −2·Y·Xᵀ``, then ``+ ‖y‖²``, then ``+ ‖x‖²`` (out-of-place, as released), then the window columns are
    gathered with the released table ``I`` and ``1e-5`` is added; global search takes the topk of ``D``.

    Args:
        query: B×C×H×W, son: B×C×h×w (float32).

    Returns:
        dist: B×M×k (with the +1e-5 of the windowed path). idx: B×M×k son indices.
    """
    y, qgrid, _ = im2patch(query, patch_size, stride)
    x, sgrid, _ = im2patch(son, patch_size, stride)
    d = -2 * torch.matmul(y, x.transpose(1, 2))
    d = d + y.pow(2).sum(-1, keepdim=True)
    d = d + x.pow(2).sum(-1).unsqueeze(1)
    side = effective_window(window, sgrid)
    if side is None:
        return torch.topk(d, k, dim=2, largest=False)
    table = window_table(qgrid, sgrid, side, graph_scale, "released", order="column", device=query.device)
    table = table.unsqueeze(0).expand(query.shape[0], -1, -1)
    dw = torch.gather(d, 2, table) + 1e-5
    del d
    dist, pos = torch.topk(dw, k, dim=2, largest=False)
    return dist, table.gather(2, pos)


# ----------------------------------------------------------------------------------------------- timing


def _timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _gemm_gflops() -> float:
    a, b = torch.randn(2048, 576), torch.randn(576, 2048)
    a @ b
    t0 = time.perf_counter()
    for _ in range(5):
        a @ b
    return 5 * 2 * 2048 * 576 * 2048 / (time.perf_counter() - t0) / 1e9


def _machine() -> dict:
    info = {**machine_info(), "loadavg": list(os.getloadavg())}
    try:
        import faiss

        info["faiss"] = faiss.__version__
        info["faiss_threads"] = faiss.omp_get_max_threads()
    except ImportError:
        info["faiss"] = None
    return info


def _search(backend: str, query: Tensor, son: Tensor, window: int | None, g: int):
    if backend == "naive":
        return lambda: naive_knn(query, son, window=window, graph_scale=g)
    if backend == PURE:
        return lambda: cross_scale_knn(query, son, k=K, window=window, graph_scale=g, backend="torch", engine="torch")
    return lambda: cross_scale_knn(query, son, k=K, window=window, graph_scale=g, backend=backend)


def _backends(query: Tensor, son: Tensor, window: int | None) -> list[str]:
    from ignn_lab._optional import available

    names = ["naive", "torch"] + (["faiss"] if available("faiss") else []) + ["auto"]
    if query.device.type == "cpu" and kernels.load() is not None:
        names.insert(2, PURE)  # the torch backend without the C kernels: the previous engine, same run
    qv = (query.shape[2] // 2) * (query.shape[3] // 2)
    sv = (son.shape[2] // 2) * (son.shape[3] // 2)
    cand = sv if window is None or effective_window(window, (son.shape[2] // 2, son.shape[3] // 2)) is None \
        else min(window, son.shape[2] // 2, son.shape[3] // 2) ** 2
    if query.shape[0] * qv * cand * query.shape[1] * 9 <= REFERENCE_MAX_WORK:
        names.insert(1, "reference")
    return names


def _bench_config(case: Case, embedding: str, window: int | None, repeats: int,
                  data_root: str | None) -> dict:
    query, son, origin = make_inputs(case, embedding, data_root)
    g = case.graph_scale
    row = {"case": case.name, "batch": case.batch, "lr_hw": list(case.lr_hw), "scale": case.scale,
           "graph_scale": g, "embedding": embedding, "dim": EMBEDDINGS[embedding], "window": window, "k": K,
           "image": origin, "times": {}}
    backends = _backends(query, son, window)
    fns = {b: _search(b, query, son, window, g) for b in backends}
    results, first = {}, {}
    for b in backends:  # a first (warm-up) call each; its result is the one checked and recorded
        first[b], results[b] = _timed(fns[b])
        if b == "torch":  # which engine ran, and its rescans
            res = results[b]
            row["torch_engine"] = {"engine": res.engine, "selection": res.selection, "shortlist": res.shortlist,
                                   "rescans": res.rescans}
    # Then `repeats` rounds that time every backend once, in rotating order, so that drift in the machine's
    # speed (large on a shared VM) hits all backends alike; a backend whose first call exceeded SLOW_S is not
    # repeated and reports that call.
    fast = [b for b in backends if first[b] <= SLOW_S] if repeats > 1 else []
    runs: dict[str, list[float]] = {b: [] for b in backends}
    for r in range(repeats if fast else 0):
        for b in fast[r % len(fast):] + fast[: r % len(fast)]:
            runs[b].append(_timed(fns[b])[0])
    for backend in backends:
        times = runs[backend] or [first[backend]]
        m = {"median_s": statistics.median(times), "runs_s": times,
             "warmup_s": first[backend] if runs[backend] else None}
        res = results[backend]
        if backend not in ("naive",):
            row.setdefault("grid", {"query": list(res.query_grid), "son": list(res.son_grid),
                                    "effective_window": res.window})
        if backend == "auto":
            row["auto_picked"], row["auto_note"] = res.backend, res.note
        row["times"][backend] = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in m.items()}
    naive_t = row["times"]["naive"]["median_s"]
    row["speedup_vs_naive"] = {b: round(naive_t / t["median_s"], 3) for b, t in row["times"].items()
                               if b != "naive"}
    if PURE in results:  # the engines must agree bit for bit
        row["pure_torch_identical"] = bool(torch.equal(results[PURE].index, results["torch"].index)
                                           and torch.equal(results[PURE].distance, results["torch"].distance))
    naive_idx = results["naive"][1]
    row["naive_index_agreement"] = round(float((results["torch"].index == naive_idx).float().mean()), 6)
    return row


# ----------------------------------------------------------------------------------------------- memory


def _probe(spec: dict) -> dict:
    """Run inside a child process: build the inputs, then one search; report RSS before and the peak."""
    if spec["case"] == "random":  # random 64-channel embeddings (576-d patches) of a size×size LR image
        gen, size = torch.Generator().manual_seed(0), spec["size"]
        query = torch.randn(1, 64, size, size, generator=gen)
        son = torch.randn(1, 64, size // 2, size // 2, generator=gen)
        g = 2
    else:
        case = next(c for c in CASES + QUICK_CASES if c.name == spec["case"])
        query, son, _ = make_inputs(case, spec["embedding"], spec.get("data_root"))
        g = case.graph_scale
    # VmHWM is this process's own peak RSS (ru_maxrss would include the forking parent's RSS on Linux)
    setup_peak, before = proc_status_mb("VmHWM"), proc_status_mb("VmRSS")
    reset = _reset_peak()  # so that the search's own peak can be read, not the setup's
    t, _ = _timed(_search(spec["backend"], query, son, spec["window"], g))
    search_peak = proc_status_mb("VmHWM")
    peak = max(setup_peak, search_peak) if reset else search_peak
    return {**spec, "inputs_mb": round((query.numel() + son.numel()) * query.element_size() / 2**20, 1),
            "rss_before_search_mb": round(before, 1), "setup_peak_rss_mb": round(setup_peak, 1),
            "peak_rss_mb": round(peak, 1), "search_peak_rss_mb": round(search_peak, 1),
            "search_increase_mb": round(search_peak - before, 1), "time_s": round(t, 4),
            "torch_threads": torch.get_num_threads()}


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process (Linux ≥ 4.0); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure_memory(spec: dict, timeout: float = 600) -> dict:
    """Peak RSS of one search in a fresh subprocess (``python -m ignn_lab.lab.bench_knn --probe SPEC``)."""
    proc = subprocess.run([sys.executable, "-m", "ignn_lab.lab.bench_knn", "--probe", json.dumps(spec)],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        return {**spec, "error": proc.stderr.strip()[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------------- run


def _criteria(rows: list[dict], memory: list[dict]) -> dict:
    out: dict = {}
    for row in rows:
        if (row["case"], row["embedding"]) != SPEED_CASE:
            continue
        t = {b: v["median_s"] for b, v in row["times"].items()}
        if row["window"] is not None:
            out["windowed_auto_s"] = t["auto"]
            out["windowed_speedup_vs_naive"] = row["speedup_vs_naive"]["auto"]
            out["windowed_ok"] = t["auto"] < 1.0 and row["speedup_vs_naive"]["auto"] >= 10
        else:
            best = min(t[b] for b in ("torch", "faiss") if b in t)
            out["whole_image_auto_picked"] = row["auto_picked"]
            out["whole_image_picked_over_best"] = round(t[row["auto_picked"]] / best, 3)
            out["whole_image_auto_over_best"] = round(t["auto"] / best, 3)
            out["whole_image_ok"] = t[row["auto_picked"]] <= 1.10 * best
    for m in memory:
        if m.get("case") == "random" and m.get("size") == 1024 and "peak_rss_mb" in m:
            out["memory_1024_peak_mb"] = m["peak_rss_mb"]  # whole process: inputs (335 MiB) included
            out["memory_1024_search_peak_mb"] = m["search_peak_rss_mb"]
            out["memory_ok"] = m["peak_rss_mb"] < 2048
    return out


def _plot(result: dict, png: Path) -> None:
    from matplotlib.figure import Figure

    rows = result["configs"]
    backends = ["naive", "reference", PURE, "torch", "faiss", "auto"]
    fig = Figure(figsize=(max(8, 0.9 * len(rows)), 4.8))
    ax = fig.add_subplot()
    width = 0.8 / len(backends)
    for j, b in enumerate(backends):
        xs = [i + (j - len(backends) / 2 + 0.5) * width for i, r in enumerate(rows) if b in r["times"]]
        ys = [r["times"][b]["median_s"] for r in rows if b in r["times"]]
        if xs:
            ax.bar(xs, ys, width, label=b)
    ax.set_yscale("log")
    ax.set_ylabel("median time (s, log)")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([f"{r['case']}\n{r['dim']}-d {'w' + str(r['window']) if r['window'] else 'global'}"
                        for r in rows], fontsize=7)
    load = result["machine"]["loadavg_before"][0]
    ax.set_title(f"cross_scale_knn, k={K} ({result['machine']['cpu_count']} CPUs, "
                 f"{result['machine']['torch_threads']} torch threads, load {load:.1f})", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, png)


def run(json_path: str | os.PathLike, *, quick: bool = False, data_root: str | None = None,
        cases: list[str] | None = None, embeddings: list[str] | None = None, memory: bool = True) -> dict:
    """Time every backend against the naive reference and write JSON (and a PNG chart beside it).

    Args:
        json_path: where to write the JSON; the chart goes to the same path with suffix ``.png``.
        quick: a reduced run (small shapes, one repeat, one memory probe) that takes seconds.
        data_root: the datasets folder (default: the usual resolution; falls back to scikit-image images).
        cases: names of the cases to run (default: all of :data:`CASES`, or :data:`QUICK_CASES`).
        embeddings: ``pixel`` and/or ``vgg-random`` (default both).
        memory: run the memory probes (subprocesses).

    Returns:
        The dict written to ``json_path``.
    """
    json_path = Path(json_path)
    pool, repeats = (QUICK_CASES, 1) if quick else (CASES, 3)
    cases_run = [c for c in pool if cases is None or c.name in cases]
    if not cases_run:
        raise ValueError(f"no case among {cases}; known: {', '.join(c.name for c in pool)}")
    embs = list(embeddings or EMBEDDINGS)
    unknown = [e for e in embs if e not in EMBEDDINGS]
    if unknown:
        raise ValueError(f"unknown embeddings {unknown}; use {', '.join(EMBEDDINGS)}")
    machine = _machine()
    machine["loadavg_before"] = machine.pop("loadavg")
    machine["gemm_gflops_before"] = round(_gemm_gflops(), 1)
    machine["knn_kernels"] = kernels.status()
    t0 = time.perf_counter()
    rows = [_bench_config(c, e, w, repeats, data_root) for c in cases_run for e in embs
            for w in (WINDOW, None)]
    quick_probe = {"case": "small-x2", "embedding": "vgg-random", "window": WINDOW, "backend": "torch"}
    probes = [quick_probe] if quick else [
        {"case": "urban-x2", "embedding": "vgg-random", "window": w, "backend": b}
        for w in (WINDOW, None) for b in ("naive", "torch", "faiss")
    ] + [{"case": "random", "size": 1024, "embedding": "random", "window": WINDOW, "backend": "auto"}]
    mem = [measure_memory({**p, "data_root": data_root}) for p in probes] if memory else []
    machine["loadavg_after"] = list(os.getloadavg())
    machine["gemm_gflops_after"] = round(_gemm_gflops(), 1)
    result = {"benchmark": "knn", "quick": quick, "k": K, "window": WINDOW, "machine": machine,
              "elapsed_s": round(time.perf_counter() - t0, 1), "criteria": _criteria(rows, mem),
              "configs": rows, "memory": mem, "cases": [asdict(c) for c in cases_run]}
    atomic_write_bytes(json_path, json.dumps(result, indent=1).encode())
    _plot(result, json_path.with_suffix(".png"))
    return result


def to_markdown(result: dict) -> str:
    """The timing table of a benchmark result (as written by :func:`run`) in Markdown."""
    m = result["machine"]
    lines = [f"{m.get('cpu')}, {m['cpu_count']} CPUs, {m['torch_threads']} torch threads; load "
             f"{m['loadavg_before'][0]:.1f} → {m['loadavg_after'][0]:.1f}; GEMM calibration "
             f"{m['gemm_gflops_before']} → {m['gemm_gflops_after']} GFLOP/s", "",
             f"kNN engine: {m.get('knn_kernels', 'n/a')}", "",
             "| case | LR (B×H×W) | D | window | naive s | torch without C s | torch s (engine) | faiss s "
             "| auto s (picks) | auto vs naive |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["configs"]:
        t = {b: v["median_s"] for b, v in r["times"].items()}
        cell = [f"{t[b]:.3f}" if b in t else "–" for b in ("naive", PURE, "torch", "faiss")]
        if "torch_engine" in r:
            engine = r["torch_engine"]  # older results name the engine "mode"
            cell[2] += f" ({engine.get('engine', engine.get('mode'))})"
        lines.append(f"| {r['case']} | {r['batch']}×{r['lr_hw'][0]}×{r['lr_hw'][1]} | {r['dim']} | "
                     f"{r['window'] or 'global'} | {' | '.join(cell)} | {t['auto']:.3f} "
                     f"({r['auto_picked']}) | {r['speedup_vs_naive']['auto']:.1f}× |")
    if result.get("memory"):
        lines += ["", "| memory probe | backend | window | time s | search peak RSS MiB "
                  "| process peak RSS MiB |", "|---|---|---|---|---|---|"]
        for p in result["memory"]:
            name = f"random {p['size']}² LR" if p.get("case") == "random" else p.get("case")
            lines.append(f"| {name} ({p.get('embedding')}) | {p.get('backend')} | "
                         f"{p.get('window') or 'global'} | {p.get('time_s', '–')} | "
                         f"{p.get('search_peak_rss_mb', '–')} | {p.get('peak_rss_mb', '–')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """The memory probe's subprocess entry (``python -m ignn_lab.lab.bench_knn --probe SPEC``, run by
    :func:`measure_memory`); users run the benchmark with ``ignn-lab bench knn``."""
    p = argparse.ArgumentParser(prog="python -m ignn_lab.lab.bench_knn", description=main.__doc__)
    p.add_argument("--probe", required=True, help="the probe's spec (JSON)")
    print(json.dumps(_probe(json.loads(p.parse_args(argv).probe))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
