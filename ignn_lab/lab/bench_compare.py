"""Before and after in one run: the kNN and model benchmark rows of two trees, timed alternately, results checked
bit for bit (``ignn-lab bench compare --base REV``).

The base revision is checked out into a temporary git worktree. One child process per tree
(:mod:`~ignn_lab.lab._compare_child`, with that tree on ``PYTHONPATH``) runs rows on request; both get the same
inputs, made once here and saved (embedded Urban100 / Set14 images as in ``bench knn``; models with the same
weights). Each row runs once per tree as a warm-up, whose result hashes are compared; then ``rounds`` timed
rounds, each row timed in both trees back to back, the order alternating from round to round and row to row,
so that the machine's drift hits both trees alike.

A row passes when both trees return the same bits and the head's median is no slower than the base's by more
than the run-to-run spread (the larger of the two trees' max − min over their rounds).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from ignn_lab.data.io import atomic_write_bytes
from ignn_lab.lab._machine import machine_info

__all__ = ["run", "markdown", "repo_root"]

_CHILD = Path(__file__).with_name("_compare_child.py")
MODEL_ROWS = [("edsr-lite", 2), ("ignn-lite", 2), ("edsr-lite", 4), ("ignn-lite", 4)]
MODEL_SIZES = (128, 256)
#: The model rows compare code, not bodies: they build this body in both revisions. It is the lite body before
#: the 20×32 one (44 blocks of 16 features), whose output path is as wide as the body, so a revision with the
#: narrower output path (``hr_feats``) and one without it build the same network.
MODEL_OVERRIDES = {"n_resblocks": 44, "n_feats": 16, "res_scale": 0.1}


def repo_root() -> Path:
    """The git checkout this package runs from."""
    here = Path(__file__).resolve().parents[2]
    done = subprocess.run(["git", "-C", str(here), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    if done.returncode:
        raise ValueError(f"bench compare needs a git checkout; {here} is not one ({done.stderr.strip()})")
    return Path(done.stdout.strip())


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    if done.returncode:
        raise ValueError(f"git {' '.join(args)}: {done.stderr.strip() or 'failed'}")
    return done.stdout.strip()


@contextmanager
def _worktree(root: Path, rev: str) -> Iterator[Path]:
    found = subprocess.run(["git", "-C", str(root), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                           capture_output=True, text=True)
    commit = found.stdout.strip()
    if found.returncode or not commit:
        raise ValueError(f"--base {rev!r} is not a revision of {root} (a branch, tag or commit is accepted)")
    with tempfile.TemporaryDirectory(prefix="ignn-lab-compare-") as tmp:
        tree = Path(tmp) / "base"
        _git(root, "worktree", "add", "--detach", str(tree), commit)
        try:
            yield tree
        finally:
            _git(root, "worktree", "remove", "--force", str(tree))


def _rows(work: Path, quick: bool, data_root: str | None) -> list[dict]:
    """The rows and their inputs (saved under ``work``), made with this tree's code."""
    from ignn_lab.lab import bench_knn
    from ignn_lab.lab.bench_models import sample_image
    from ignn_lab.models import build

    rows = []
    for case in bench_knn.QUICK_CASES if quick else bench_knn.CASES:
        for embedding in bench_knn.EMBEDDINGS:
            path = work / f"knn-{case.name}-{embedding}.pt"
            query, son, _ = bench_knn.make_inputs(case, embedding, data_root)
            torch.save({"query": query, "son": son}, path)
            for window in (bench_knn.WINDOW, None):
                rows.append({"id": f"knn {case.name} {bench_knn.EMBEDDINGS[embedding]}-d "
                                   f"{'w' + str(window) if window else 'global'}", "kind": "knn", "inputs": str(path),
                             "k": bench_knn.K, "window": window, "graph_scale": case.graph_scale})
    for model, scale in MODEL_ROWS[:2] if quick else MODEL_ROWS:
        torch.manual_seed(0)
        state = build(model, scale, **MODEL_OVERRIDES).state_dict()
        for size in (48,) if quick else MODEL_SIZES:
            path = work / f"model-{model}-x{scale}-{size}.pt"
            torch.save({"state_dict": state, "lr": sample_image(size)[None].float() / 255}, path)
            rows.append({"id": f"model {model} x{scale} {size}²", "kind": "model", "inputs": str(path),
                         "model": model, "scale": scale, "overrides": MODEL_OVERRIDES})
    return rows


class _Child:
    """A child process running rows with one tree's ``ignn_lab``."""

    def __init__(self, tree: Path, log: Path):
        self.log = open(log, "w")
        env = {**os.environ, "PYTHONPATH": str(tree)}
        self.proc = subprocess.Popen([sys.executable, str(_CHILD)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, env=env, cwd=tree)

    def run(self, row: dict) -> dict:
        self.proc.stdin.write(json.dumps(row) + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT "):])
        raise RuntimeError(f"the child process ended (exit {self.proc.wait()}); see {self.log.name}")

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.log.close()


def _summarise(row: dict, result: dict) -> dict:
    out = {"id": row["id"]}
    for side in ("base", "head"):
        runs = result[side]["runs"]
        out[side] = {"median_s": statistics.median(runs) if runs else None, "runs_s": runs,
                     "hash": result[side]["hash"], **({"error": result[side]["error"]} if "error" in result[side]
                                                      else {})}
    if "error" in out["base"] or "error" in out["head"]:
        out["identical"], out["ok"] = False, False
        return out
    base, head = out["base"], out["head"]
    spread = max(max(s["runs_s"]) - min(s["runs_s"]) for s in (base, head))
    out["identical"] = base["hash"] == head["hash"]
    out["spread_s"] = spread
    out["head_minus_base_s"] = head["median_s"] - base["median_s"]
    out["ok"] = out["identical"] and out["head_minus_base_s"] <= spread
    return out


def run(base: str, json_path: str | os.PathLike | None = None, *, quick: bool = False, rounds: int | None = None,
        data_root: str | None = None, progress: bool = True) -> dict:
    """Time the rows in the base revision and in this checkout alternately; check their results are identical.

    Args:
        base: a git revision of this checkout (``main``, a commit, ``HEAD~3``).
        json_path: where to write the report (and a Markdown table beside it, ``.md``); None: not written.
        quick: small shapes (the quick kNN cases, lite models on a 48² image), 2 rounds: seconds, for checks.
        rounds: timed rounds (default 5; 2 with ``quick``).
        data_root: the datasets folder for the kNN inputs (default: the usual resolution).
        progress: a tqdm bar over the measurements.

    Returns:
        ``{"base": ..., "head": ..., "rows": [...], "all_identical", "slower": [ids], "ok", "machine"}``.
    """
    from tqdm.auto import tqdm

    rounds = rounds or (2 if quick else 5)
    if rounds < 2:
        raise ValueError(f"rounds must be >= 2 (the spread needs two runs per tree), got {rounds}")
    root = repo_root()
    load0 = os.getloadavg()
    with _worktree(root, base) as base_tree, tempfile.TemporaryDirectory(prefix="ignn-lab-compare-in-") as tmp:
        work = Path(tmp)
        rows = _rows(work, quick, data_root)
        children = {"base": _Child(base_tree, work / "base.log"), "head": _Child(root, work / "head.log")}
        results = [{side: {"runs": [], "hash": None} for side in children} for _ in rows]
        bar = tqdm(total=len(rows) * (rounds + 1) * 2, desc="bench compare", disable=not progress)
        try:
            for r in range(rounds + 1):  # round 0: warm-up, whose results are compared
                for i, row in enumerate(rows):
                    order = ("base", "head") if (r + i) % 2 == 0 else ("head", "base")
                    for side in order:
                        res, got = children[side].run(row), results[i][side]
                        bar.update()
                        if "error" in res:
                            got["error"] = res["error"]
                        elif r == 0:
                            got["hash"] = res["hash"]
                        else:
                            got["runs"].append(res["seconds"])
        finally:
            bar.close()
            for child in children.values():
                child.close()
        base_commit = _git(root, "rev-parse", base)
    report_rows = [_summarise(row, res) for row, res in zip(rows, results)]
    head_state = _git(root, "rev-parse", "HEAD") + (" + uncommitted changes" if _git(root, "status", "--porcelain")
                                                    else "")
    report = {"benchmark": "compare", "quick": quick, "rounds": rounds, "base": f"{base} ({base_commit})",
              "head": head_state, "rows": report_rows,
              "all_identical": all(r["identical"] for r in report_rows),
              "slower": [r["id"] for r in report_rows if not r["ok"] and r["identical"]],
              "ok": all(r["ok"] for r in report_rows), "loadavg_before": list(load0),
              "loadavg_after": list(os.getloadavg()), "machine": machine_info()}
    if json_path is not None:
        atomic_write_bytes(Path(json_path), json.dumps(report, indent=1).encode())
        atomic_write_bytes(Path(json_path).with_suffix(".md"), markdown(report).encode())
    return report


def markdown(report: dict) -> str:
    """The comparison as a Markdown table."""
    lines = [f"base {report['base']} · head {report['head']} · {report['rounds']} rounds; load "
             f"{report['loadavg_before'][0]:.1f} → {report['loadavg_after'][0]:.1f}", "",
             "| row | base s (median) | head s (median) | head − base s | spread s | same bits | verdict |",
             "|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        if "spread_s" not in r:
            err = r["base"].get("error") or r["head"].get("error")
            lines.append(f"| {r['id']} | | | | | | error: {err} |")
            continue
        verdict = "ok" if r["ok"] else ("different results" if not r["identical"] else "slower")
        lines.append(f"| {r['id']} | {r['base']['median_s']:.4f} | {r['head']['median_s']:.4f} | "
                     f"{r['head_minus_base_s']:+.4f} | {r['spread_s']:.4f} | {'yes' if r['identical'] else 'NO'} | "
                     f"{verdict} |")
    return "\n".join(lines) + "\n"
