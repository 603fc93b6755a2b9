"""``ignn-lab``: a thin command-line shell over ``ignn_lab.lab`` (argparse → task functions)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ignn_lab._interrupt import run_interruptible

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """argparse with errors as one line (``ignn-lab evaluate: error: argument --limit: …``) and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _csv(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return items


def _unique(items: list, what: str) -> list:
    seen = set()
    for item in items:
        key = item.lower() if isinstance(item, str) else item
        if key in seen:
            raise argparse.ArgumentTypeError(f"{what} {item!r} is listed twice; give each once")
        seen.add(key)
    return items


def _sets(text: str) -> list[str]:
    return _unique(_csv(text), "set")


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _scales(text: str) -> list[int]:
    from ignn_lab.engine.evaluate import check_scales

    try:
        return check_scales(_ints(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _int_at_least(lo: int, expected: str):
    """An argparse type: an int ≥ ``lo``, else an error that shows the text and says what is expected."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = lo - 1
        if v < lo:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return v

    return parse


_scale = _int_at_least(2, "an integer scale ≥ 2")
_positive = _int_at_least(1, "a positive integer")
_window_side = _int_at_least(1, "a positive integer, or none/global/0 for a whole-image search")


def _pair(text: str) -> tuple[int, int]:
    vals = _ints(text)
    if len(vals) != 2 or min(vals) < 0:
        raise argparse.ArgumentTypeError(f"expected ROW,COL (two integers ≥ 0), got {text!r}")
    return vals[0], vals[1]


def _window(text: str) -> int | None:
    """A search window in son patches, or a global search: ``none``, ``global`` or ``0`` → None."""
    return None if text.lower() in ("none", "global", "0") else _window_side(text)


def _kv(items: list[str] | None) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"parameter {item!r}: expected key=value")
        k, v = item.split("=", 1)
        if k in out:
            raise ValueError(f"parameter {k!r} is given twice")
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


#: The model options of evaluate/upscale (library names); each is on the parsed arguments only when given.
_MODEL_OPTIONS = ("embedding", "k", "window", "weighting", "adapn", "cross_scale", "self_ensemble", "tile", "device",
                  "dtype")


def _model_opts(a) -> dict:
    """The model options given on the command line (window None = global search)."""
    return {name: getattr(a, name) for name in _MODEL_OPTIONS if hasattr(a, name)}


def cmd_data_check(a) -> int:
    from ignn_lab.data.datasets import check_data_root

    rep = check_data_root(a.data_root, a.sets, progress=not a.quiet)
    print(f"data root: {rep.root}")
    print(f"checked {rep.checked} files: {rep.ok} ok, {len(rep.missing)} missing, {len(rep.altered)} altered, "
          f"{len(rep.extra)} extra")
    for p in rep.missing:
        print(f"  missing: {p}")
    for p in rep.altered:
        print(f"  altered (size or sha256 differs from MANIFEST.tsv): {p}")
    for p in rep.extra:
        print(f"  extra (an image MANIFEST.tsv does not list): {p}")
    return 0 if rep.passed else 1


def cmd_data_list(a) -> int:
    from ignn_lab.data.datasets import known_sets, list_images

    if not a.set:
        print("\n".join(known_sets()))
        return 0
    for r in list_images(a.set, a.data_root):
        print(f"{r.set}\t{r.name}\t{r.path}")
    return 0


def cmd_evaluate(a) -> int:
    from ignn_lab.lab.tasks import evaluate_task

    res = evaluate_task(a.model, a.sets, a.scales, out=a.out, data_root=a.data_root, save_images=a.save_images,
                        progress=not a.quiet, limit=a.limit, **_model_opts(a))
    print((Path(a.out) / "table.md").read_text(), end="")
    print(f"wrote {Path(a.out) / 'results.json'} ({res['provenance']['seconds']:.1f} s)")
    return 0


def cmd_ablate(a) -> int:
    from ignn_lab.lab.ablate import graphagg_ablation

    graphagg_ablation(a.variants, a.sets, a.scales, out=a.out, data_root=a.data_root, limit=a.limit,
                      progress=not a.quiet)
    print((Path(a.out) / "ablation.md").read_text(), end="")
    print(f"wrote {Path(a.out) / 'ablation.json'} and ablation.png")
    return 0


def cmd_reproduce(a) -> int:
    from ignn_lab.lab.reproduce import reproduce

    if a.train_commands:
        from ignn_lab.lab.tables import lite_train_commands

        if a.profile != "lite":
            raise ValueError("--train-commands: only the lite profile trains its ablation variants beforehand; "
                             "smoke trains inside its runs and paper through --emit-jobs")
        print(lite_train_commands(None if a.what == "all" else _csv(a.what), checkpoints=a.checkpoints), end="")
        return 0
    rep = reproduce(a.what, a.profile, out=a.out, jobs=a.jobs, emit_jobs_to=a.emit_jobs, checkpoints=a.checkpoints,
                    device=a.device, data_root=a.data_root, progress=not a.quiet, replace_cited=a.replace_cited)
    if a.emit_jobs:
        if rep.emitted:
            print(f"wrote {rep.emitted}: a SLURM array of {len(rep.pending)} run(s) ({len(rep.cached)} already "
                  "done); submit it with sbatch, then run this command again without --emit-jobs to assemble")
        else:
            print(f"nothing to emit: all {len(rep.cached)} run(s) are done; run without --emit-jobs to assemble")
        return 0
    for name, paths in rep.tables.items():
        print(paths["md"].read_text(), end="\n")
    print(f"{len(rep.executed)} run(s) executed, {len(rep.cached)} from the cache (same key), "
          f"{len(rep.failed)} failed; {rep.seconds:.1f} s; tables: "
          + (", ".join(str(p["md"]) for p in rep.tables.values()) or "none"))
    for name, err in rep.failed.items():
        print(f"failed: {name}: {err}", file=sys.stderr)
    return 1 if rep.failed else 0


def cmd_demo(a) -> int:
    from ignn_lab.lab.tasks import demo

    res = demo(a.out, scales=a.scales, explore=not a.no_explore, progress=not a.quiet)
    print(Path(res["table"]).read_text(), end="")
    print(f"demo written to {res['out']}:")
    print(f"  table:   {res['table']}")
    print(f"  crops:   {len(res['crops'])} PNGs in {Path(res['out']) / 'crops'}")
    if res["explore"]:
        print(f"  matches: {len(res['explore'])} PNGs in {Path(res['out']) / 'explore'}")
    return 0


def cmd_explore(a) -> int:
    from ignn_lab.lab.explore import explore

    info = explore(a.image, scale=a.scale, query=a.query, k=a.k, window=a.window, embedding=a.embedding,
                   patch_size=a.patch_size, out=a.out, data_root=a.data_root)
    print(json.dumps({k: v for k, v in info.items() if k in ("query", "figure", "json", "neighbours")},
                     indent=1, default=str))
    return 0


def cmd_bench(a) -> int:
    """Every benchmark of ``ignn_lab.lab``; each writes JSON (and a table / chart beside it)."""
    if a.what == "knn":
        from ignn_lab.lab import bench_knn

        if a.table:
            print(bench_knn.to_markdown(json.loads(Path(a.table).read_text())), end="")
            return 0
        if not a.json:
            raise ValueError("bench knn needs --json OUT (or --table RESULT.json to print an existing result)")
        bench_knn.run(a.json, quick=a.quick, data_root=a.data_root, cases=a.cases, embeddings=a.embeddings,
                      memory=not a.no_memory)
    elif a.what == "models":
        from ignn_lab.lab.bench_models import markdown, run

        print(markdown(run(a.json, quick=a.quick, paper=not a.no_paper, sizes=tuple(a.sizes), scales=tuple(a.scales),
                           threads=a.threads, progress=not a.quiet)), end="")
    elif a.what == "memory":
        from ignn_lab.lab.bench_models import memory_check

        res = memory_check(a.json, model=a.model, scale=a.scale, size=a.size, budget_gb=a.budget_gb, tile=a.tile,
                           threads=a.threads)
        if "error" in res:
            raise ValueError(f"the memory check failed: {res['error']}")
        print(f"peak RSS {res['peak_rss_mb'] / 1024:.2f} GB with {res['tiles']} tiles of {res['tile']} "
              f"({res['seconds']:.0f} s)")
    elif a.what == "eval":
        from ignn_lab.lab.bench_eval import run

        res = run(a.json, quick=a.quick, full=not a.no_full)
        print(f"kit {res['ignn_lab_s']} s, numpy baseline {res['baseline_numpy_s']} s ({res['speedup']}×)")
    elif a.what == "sizing":
        import torch

        from ignn_lab.lab.sizing import parse_bodies, run, summary

        if a.threads:
            torch.set_num_threads(a.threads)  # this process is the benchmark: its thread count is the setting
        print(summary(run(a.json, quick=a.quick, bodies=parse_bodies(a.sweep))))
    elif a.what == "parity":
        from ignn_lab.data.datasets import reference_root
        from ignn_lab.lab.parity import run, summary

        ref = a.reference or reference_root(a.data_root)
        if ref is None:
            raise FileNotFoundError("the reference folder (official_ignn_*.pt) was not found; pass --reference DIR")
        print(summary(run(ref, a.json)))
    elif a.what == "train":
        from ignn_lab.lab.bench_train import VARIANTS, run as bench_train

        variants = tuple(_csv(a.variants)) if a.variants else VARIANTS[:3]
        bench_train(a.json, quick=a.quick, variants=variants, data_root=a.data_root, threads=a.threads)
        print(Path(a.json).with_suffix(".md").read_text(), end="")
    elif a.what == "explorer":
        from ignn_lab.lab.bench_explorer import run

        run(a.json, quick=a.quick, clicks=a.clicks, repeats=a.repeats, model=not a.no_model)
        print(Path(a.json).with_suffix(".md").read_text(), end="")
    elif a.what == "sweep":
        from ignn_lab.lab.lite_sweep import parse_bodies, run as sweep

        sweep(a.json, parse_bodies(a.bodies), minutes=a.minutes, jobs=a.jobs, threads=a.threads,
              data_root=a.data_root)
        print((Path(a.json).with_suffix(".md")).read_text(), end="")
    else:
        from ignn_lab.lab.bench_compare import markdown, run

        res = run(a.base, a.json, quick=a.quick, rounds=a.rounds, data_root=a.data_root, progress=not a.quiet)
        print(markdown(res), end="")
        if not res["ok"]:
            print("bench compare: " + ("results differ" if not res["all_identical"] else
                                       f"slower than the run-to-run spread: {', '.join(res['slower'])}"))
            return 1
    if a.json:
        print(f"wrote {a.json}")
    return 0


def cmd_upscale(a) -> int:
    from ignn_lab.engine.options import PredictOptions
    from ignn_lab.lab.upscale import upscale

    paths = upscale(a.inputs, model=a.model, scale=a.scale, out=a.out, progress=not a.quiet,
                    options=PredictOptions.from_kwargs(**_model_opts(a)))
    print(f"wrote {len(paths)} image(s) to {a.out}")
    return 0


def cmd_models(a) -> int:
    from ignn_lab.models import list_models
    from ignn_lab.models.pretrained import list_pretrained

    rows = [("bicubic", "the protocol's baseline (MATLAB bicubic)"),
            ("graphagg-star", "non-learned cross-scale graph aggregation"),
            *[(n, f"shipped checkpoint ({p.name})") for n, p in list_pretrained().items()],
            *[(n, "registry network (random weights: train it, or give a checkpoint)") for n in list_models()]]
    width = max(len(n) for n, _ in rows)
    for name, text in rows:
        print(f"{name:<{width}}  {text}")
    return 0


def cmd_train(a) -> int:
    from ignn_lab.lab.tasks import train_task

    from ignn_lab.engine.distributed import dist_info

    res = train_task(a.config, a.out, overrides=a.set, resume=a.resume, device=a.device,
                     max_minutes=a.max_minutes, progress=not a.quiet)
    if not dist_info().is_main:  # under torchrun, rank 0 reports
        return 0 if res.status != "interrupted" else 130
    best = f"{res.best_psnr:.3f} dB" if res.best_psnr is not None else "–"
    print(f"{res.status} at step {res.step}/{res.steps} ({res.seconds / 60:.1f} min in total); best validation "
          f"PSNR-Y {best}; run folder {res.out}")
    if res.status != "finished":
        print(f"continue with: ignn-lab train --out {res.out} --resume")
    return 0 if res.status != "interrupted" else 130


def cmd_compare(a) -> int:
    from ignn_lab.lab.compare import comparison_table, paired_difference, paired_table, read_cells

    if a.paired:
        if len(a.results) != 2:
            raise ValueError(f"--paired compares two results.json files (model A, then model B); got {len(a.results)}")
        print(paired_table(paired_difference(*a.results)), end="")
        return 0
    print(comparison_table(read_cells(a.results), methods=_csv(a.methods), sets=a.sets), end="")
    return 0


def cmd_curves(a) -> int:
    from ignn_lab.lab.training import compare_curves

    offsets = _csv(a.offsets) if a.offsets else None
    if offsets is not None and not all(x.isdigit() for x in offsets):
        raise ValueError(f"--offsets {a.offsets!r}: expected whole step counts >= 0, comma-separated")
    res = compare_curves(a.runs, a.out, labels=_csv(a.labels) if a.labels else None, title=a.title,
                         offsets=[int(x) for x in offsets] if offsets else None)
    for label, r in res["runs"].items():
        best = "no validation yet" if r["best_val_psnr"] is None else \
            f"best validation {r['best_val_psnr']:.3f} dB at step {r['best_step']}"
        print(f"{label}: step {r['last_step']}, {best}")
    print(res["figure"])
    return 0


def cmd_configs(a) -> int:
    from ignn_lab.engine.train_config import list_configs

    configs = list_configs()
    width = max(map(len, configs), default=0)
    for name, text in configs.items():
        print(f"{name:<{width}}  {text}")
    return 0


def cmd_run_notebook(a) -> int:
    from ignn_lab.lab.notebooks import run_notebook

    if a.plan:
        from ignn_lab.lab.reproduce import execute_plan

        if a.name or a.param or a.out:
            raise ValueError("--plan FILE takes the notebook, parameters and folder from the plan; give no NAME, "
                             "-p or --out with it")
        status = execute_plan(a.plan, progress=not a.quiet)
        print(f"{a.plan}: {'already done (same key)' if status == 'cached' else 'done'}")
        return 0
    if not a.name or not a.out:
        raise ValueError("run-notebook needs NAME and --out DIR (or --plan FILE from ignn-lab reproduce)")
    dst = run_notebook(a.name, _kv(a.param), a.out, progress=not a.quiet)
    print(f"executed notebook: {dst}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from ignn_lab import __version__

    p = _Parser(prog="ignn-lab", description="Cross-scale internal graph SR research kit.")
    p.add_argument("--version", action="version", version=f"ignn-lab {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, data=True):
        if data:
            sp.add_argument("--data-root", help="folder with Set5/ … (default: IGNN_LAB_DATA or ../shared/datasets)")
        sp.add_argument("--quiet", action="store_true", help="no progress bars")

    d = sub.add_parser("data", help="data root utilities")
    dsub = d.add_subparsers(dest="data_command", required=True)
    dc = dsub.add_parser("check", help="verify the data root against MANIFEST.tsv (sha256, extra files)")
    dc.add_argument("--sets", type=_sets, help="only these sets (comma-separated)")
    common(dc)
    dc.set_defaults(func=cmd_data_check)
    dl = dsub.add_parser("list", help="list the known sets, or the images of one set")
    dl.add_argument("set", nargs="?")
    common(dl)
    dl.set_defaults(func=cmd_data_list)

    def model_args(sp):
        # SUPPRESS: an option is on the parsed arguments only when given, so "not given" and "none" differ
        g = sp.add_argument_group("model options (each is refused by a model it does not apply to)")
        q = argparse.SUPPRESS
        g.add_argument("--embedding", default=q, help="matching embedding (graphagg-star): pixel, vgg-random, vgg19")
        g.add_argument("--k", type=_positive, default=q, help="neighbours (graphagg-star; IGNN config)")
        g.add_argument("--window", type=_window, default=q,
                       help="search window in son patches, or none/global/0 for a whole-image search")
        g.add_argument("--weighting", choices=["uniform", "distance"], default=q, help="neighbour weights "
                       "(graphagg-star)")
        g.add_argument("--no-adapn", dest="adapn", action="store_const", const=False, default=q,
                       help="skip AdaPN normalisation (graphagg-star; IGNN config)")
        g.add_argument("--same-scale", dest="cross_scale", action="store_const", const=False, default=q,
                       help="same-scale neighbours, RQ2 (graphagg-star; IGNN config)")
        g.add_argument("--self-ensemble", action="store_const", const=True, default=q,
                       help="×8 flip/transpose ensemble (networks)")
        g.add_argument("--tile", type=_positive, default=q, help="LR tile side for tiled inference (networks)")
        g.add_argument("--device", default=q, help="cpu, cuda, cuda:1 … (networks, graphagg-star)")
        g.add_argument("--dtype", choices=["float32", "float64", "bfloat16", "float16"], default=q,
                       help="networks; half types on GPU")

    e = sub.add_parser("evaluate", help="PSNR/SSIM (Y) on benchmark sets with the exact protocol")
    e.add_argument("--model", default="bicubic", help="bicubic, graphagg-star, a shipped checkpoint or registry "
                   "name (ignn-lab models), or a checkpoint file")
    e.add_argument("--sets", type=_sets, default=["Set5", "Set14", "B100", "Urban100"],
                   help="set names (always those of the data root) or folders (./Set5 for a local folder)")
    e.add_argument("--scales", type=_scales, default=[2, 3, 4])
    e.add_argument("--out", required=True, help="output folder (results.json, table.md, psnr.png)")
    e.add_argument("--save-images", action="store_true", help="write the SR PNGs to OUT/images/")
    e.add_argument("--limit", type=_positive, help="only the first N images of each set (no published values)")
    model_args(e)
    common(e)
    e.set_defaults(func=cmd_evaluate)

    ab = sub.add_parser("ablate", help="GraphAgg* ablation: one switch at a time, scored with the protocol")
    ab.add_argument("what", choices=["graphagg"])
    ab.add_argument("--variants", type=lambda t: _unique(_csv(t), "variant"),
                    help="names (default: all but vgg-random): default, no-adapn, distance-weighting, k1, k10, "
                    "global-search, same-scale, vgg-random")
    ab.add_argument("--sets", type=_sets, default=["Set5"])
    ab.add_argument("--scales", type=_scales, default=[2])
    ab.add_argument("--limit", type=_positive, help="only the first N images of each set")
    ab.add_argument("--out", default="runs/ablate-graphagg")
    common(ab)
    ab.set_defaults(func=cmd_ablate)

    r = sub.add_parser("reproduce", help="reproduce tables headlessly: cached notebook runs, tables with provenance")
    r.add_argument("what", help="bicubic, main, adapn-ecn, position, k-window, same-vs-cross, embedding, "
                   "graphagg-star (comma-separated) or all")
    r.add_argument("--profile", choices=["smoke", "lite", "paper"], default="smoke",
                   help="smoke: minutes on a CPU; lite: the CPU study (shipped and trained lite models); paper: "
                   "the paper's models (released checkpoints, GPU training)")
    r.add_argument("--out", help="output folder (default runs/reproduce-PROFILE): TABLE.md/.csv/.tex, runs/, plan/")
    r.add_argument("--jobs", type=int, default=1, help="notebook runs at once")
    r.add_argument("--emit-jobs", metavar="FILE", help="write a SLURM array script of the runs instead of running")
    r.add_argument("--checkpoints", metavar="DIR", help="lite: NAME.pt or NAME/best.pt checkpoints and the trained "
                   "ablation variants (default runs/lite-ablation); paper: the released IGNN_x{2,3,4}.pth")
    r.add_argument("--device", help="where networks run (default: cuda for paper, else cpu)")
    r.add_argument("--replace-cited", action="store_true",
                   help="run even when a run's folder holds results that another table in --out cites")
    r.add_argument("--train-commands", action="store_true",
                   help="lite: print the commands that train the ablation variants, and exit")
    common(r)
    r.set_defaults(func=cmd_reproduce)

    dm = sub.add_parser("demo", help="the main job on the embedded skimage set")
    dm.add_argument("--out", default="runs/demo")
    dm.add_argument("--scales", type=_scales, default=[2, 4])
    dm.add_argument("--no-explore", action="store_true", help="skip the match figures")
    common(dm, data=False)
    dm.set_defaults(func=cmd_demo)

    x = sub.add_parser("explore", help="figure of the cross-scale matches of one query patch")
    x.add_argument("image", help="a path or SET/NAME (e.g. skimage/astronaut, Urban100/img_004)")
    x.add_argument("--scale", type=_scale, default=2)
    x.add_argument("--query", type=_pair, help="ROW,COL in LR pixels (default: the most recurrent patch)")
    x.add_argument("--k", type=_positive, default=5)
    x.add_argument("--window", type=_window, default=30, help="son patches, or none/global/0")
    x.add_argument("--embedding", default="pixel", choices=["pixel", "vgg-random", "vgg19"])
    x.add_argument("--patch-size", type=_positive, default=3)
    x.add_argument("--out", default="fig.png", help="the figure (.png, .pdf, .svg); the JSON goes beside it")
    common(x)
    x.set_defaults(func=cmd_explore)

    b = sub.add_parser("bench", help="benchmarks that write JSON (and a table or chart beside it)")
    bsub = b.add_subparsers(dest="what", required=True)

    def bench(name, text, json_required=True):
        sp = bsub.add_parser(name, help=text, description=text)
        sp.add_argument("--json", required=json_required, help="output JSON path")
        sp.add_argument("--quiet", action="store_true", help="no progress bars")
        sp.set_defaults(func=cmd_bench)
        return sp

    bk = bench("knn", "cross_scale_knn: every backend against the naive released search", json_required=False)
    bk.add_argument("--quick", action="store_true", help="small shapes, one repeat: seconds")
    bk.add_argument("--data-root", help="datasets folder of the input images (default: the usual resolution)")
    bk.add_argument("--cases", type=_csv, help="train-x2, set14-x2, urban-x2, urban-x4 (--quick: train-x2-quick, "
                    "small-x2)")
    bk.add_argument("--embeddings", type=_csv, help="pixel and/or vgg-random")
    bk.add_argument("--no-memory", action="store_true", help="skip the memory probes (subprocesses)")
    bk.add_argument("--table", metavar="RESULT", help="print the Markdown table of an existing result and exit")
    bm = bench("models", "EDSR vs IGNN: parameters, FLOPs, CPU time, peak memory")
    bm.add_argument("--quick", action="store_true", help="lite models, one small image: seconds")
    bm.add_argument("--no-paper", action="store_true", help="skip the paper-size models (minutes each)")
    bm.add_argument("--sizes", type=_ints, default=[128, 256], help="LR sides, comma-separated")
    bm.add_argument("--scales", type=_ints, default=[2, 4], help="scales, comma-separated")
    bm.add_argument("--threads", type=int, help="torch threads per measurement (default: all cores)")
    bmem = bench("memory", "peak RSS of a tiled upscale (paper-size IGNN x2 on a 1024x1024 LR image by default)")
    bmem.add_argument("--model", default="ignn")
    bmem.add_argument("--scale", type=int, default=2)
    bmem.add_argument("--size", type=int, default=1024, help="LR side")
    bmem.add_argument("--budget-gb", type=float, help="memory budget of the tiling (default: the engine's)")
    bmem.add_argument("--tile", type=int, help="a fixed tile side instead of the budget")
    bmem.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    be = bench("eval", "the evaluation pipeline against a plain numpy implementation of the protocol")
    be.add_argument("--quick", action="store_true", help="two images: seconds")
    be.add_argument("--no-full", action="store_true", help="skip timing the full 12-cell bicubic table")
    bz = bench("sizing", "how the lite sizes were chosen: training-step and inference timings of the lite models")
    bz.add_argument("--quick", action="store_true", help="3 repeats instead of 9")
    bz.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    bz.add_argument("--sweep", default="", help="other bodies to time, BLOCKSxWIDTH comma-separated (e.g. 32x16,48x16)")
    bp = bench("parity", "the kit's IGNN against the released code's fixtures (official_ignn_*.pt)")
    bp.add_argument("--reference", help="folder with official_ignn_*.pt (default: beside the data root)")
    bp.add_argument("--data-root", help="datasets folder whose reference/ sibling holds the fixtures")
    bs = bench("sweep", "lite body sweep: train candidate bodies for the same CPU budget, compare validation PSNR")
    bs.add_argument("--bodies", default="8x32x1,12x32x1,16x32x1,6x48x1,24x16x1,44x16x0.1,12x32x0.1,12x32x1:none",
                    help="bodies BLOCKSxWIDTHxRES_SCALE[:amp]")
    bs.add_argument("--minutes", type=float, default=12.0, help="CPU budget per body")
    bs.add_argument("--jobs", type=int, default=2, help="runs at once")
    bs.add_argument("--threads", type=int, default=1, help="torch threads per run")
    bs.add_argument("--data-root", help="datasets folder (training and validation images)")
    bt = bench("train", "training steps/s of EDSR-lite and IGNN-lite, alternately in one process: fp32, "
               "contiguous activations, bfloat16 autocast, torch.compile")
    bt.add_argument("--quick", action="store_true", help="3 timed steps per model and variant")
    bt.add_argument("--variants", help="fp32,fp32-contiguous,bf16,bf16-contiguous,bf16-compile (default: the first "
                    "three)")
    bt.add_argument("--threads", type=int, help="torch threads (default: all cores; the lite recipe trains one "
                    "run per core with 1)")
    bt.add_argument("--data-root", help="datasets folder (T91 crops; random patches without it)")
    bx = bench("explorer", "the interactive explorer: graph build per setting and click latency (median, p95)")
    bx.add_argument("--quick", action="store_true", help="10 clicks, one build per embedding")
    bx.add_argument("--clicks", type=int, default=100, help="random clicks per mode")
    bx.add_argument("--repeats", type=int, default=3, help="graph builds per embedding")
    bx.add_argument("--no-model", action="store_true", help="skip the rows with a model")
    bc = bench("compare", "the kNN and model rows of a base revision and this checkout, timed alternately in one "
               "run; results must be bit-identical", json_required=False)
    bc.add_argument("--base", required=True, help="git revision to compare against (main, a commit, HEAD~1)")
    bc.add_argument("--quick", action="store_true", help="small shapes, 2 rounds: checks that it works")
    bc.add_argument("--rounds", type=int, help="timed rounds (default 5; 2 with --quick)")
    bc.add_argument("--data-root", help="datasets folder of the kNN input images")

    u = sub.add_parser("upscale", help="super-resolve images without ground truth")
    u.add_argument("inputs", help="an image or a folder of images")
    u.add_argument("--model", required=True, help="a checkpoint, a released IGNN .pth, a shipped checkpoint or "
                   "registry name, bicubic or graphagg-star")
    u.add_argument("--scale", type=_scale, required=True)
    u.add_argument("--out", required=True, help="output folder (one PNG per input)")
    model_args(u)
    common(u, data=False)
    u.set_defaults(func=cmd_upscale)

    t = sub.add_parser("train", help="train a model (resumable; runs under torchrun unchanged)")
    t.add_argument("--config", help="a shipped config name (ignn-lab configs) or a JSON file; with --resume "
                   "the run's own config is the default")
    t.add_argument("--out", required=True, help="the run folder (config.json, log.jsonl, curves.png, last.pt, "
                   "best.pt)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config field (JSON values; model_overrides.NAME=VALUE for model fields)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    t.add_argument("--device", default="cpu", help="cpu or cuda (under torchrun: this rank's GPU)")
    t.add_argument("--max-minutes", type=float, help="stop after this many minutes, saving last.pt")
    common(t, data=False)
    t.set_defaults(func=cmd_train)

    cp = sub.add_parser("compare", help="our results.json beside published methods: one PSNR / SSIM table")
    cp.add_argument("results", nargs="+", help="results.json files of ignn-lab evaluate")
    cp.add_argument("--methods", default="Bicubic,SRCNN,FSRCNN,VDSR,CARN-M",
                    help="published methods (shared/reference/published_results.tsv), comma-separated")
    cp.add_argument("--sets", type=_csv, default=["Set5", "Set14", "B100", "Urban100"])
    cp.add_argument("--paired", action="store_true",
                    help="two results.json (A, B): A − B image by image, with a 95%% interval per set")
    cp.set_defaults(func=cmd_compare)

    cu = sub.add_parser("curves", help="training curves of several runs in one figure (loss, validation PSNR)")
    cu.add_argument("runs", nargs="+", help="run folders of ignn-lab train")
    cu.add_argument("--out", required=True, help="the figure (.png, .pdf or .svg)")
    cu.add_argument("--labels", help="one label per run, comma-separated (default: the folder names)")
    cu.add_argument("--title")
    cu.add_argument("--offsets", help="steps added to each run's own, comma-separated (a run started from "
                    "another's weights, drawn after them)")
    cu.set_defaults(func=cmd_curves)

    cf = sub.add_parser("configs", help="list the shipped training configs")
    cf.set_defaults(func=cmd_configs)

    m = sub.add_parser("models", help="list the model names")
    m.set_defaults(func=cmd_models)

    n = sub.add_parser("run-notebook", help="execute a notebook with papermill parameters")
    n.add_argument("name", nargs="?", help="e.g. 03_evaluate")
    n.add_argument("-p", "--param", action="append", help="key=value (JSON values allowed); the names are the "
                   "notebook's parameters")
    n.add_argument("--out", help="output folder: the executed notebook and, for a notebook with an 'out' "
                   "parameter, its results")
    n.add_argument("--plan", metavar="FILE", help="run a plan file written by ignn-lab reproduce (its notebook, "
                   "parameters and folder; records the key)")
    common(n, data=False)
    n.set_defaults(func=cmd_run_notebook)
    return p


def _one_line(exc: BaseException) -> str:
    """An error as one line: the kit's messages name the file or value; a bare OSError gets its file name."""
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    elif isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = sys.argv[1:] if argv is None else list(argv)
    command = next((x for x in args if not x.startswith("-")), "")
    # Parsing runs under the interrupt handler too: option types import the kit (and torch), and a Ctrl-C
    # inside torch's import aborts the process otherwise.
    return run_interruptible(lambda: _run(parser.parse_args(args)), f"ignn-lab {command}".rstrip())


def _run(a) -> int:
    """Run the parsed command: the kit's errors as one line and exit code 2."""
    import warnings

    from PIL import Image

    from ignn_lab.lab.notebooks import NotebookError

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"ignn-lab {a.command}: warning: {' '.join(str(message).split())}", file=file or sys.stderr)

    # The command line is the application: it decides how warnings look (one line each). PIL's
    # decompression-bomb warning is dropped: read_image refuses such images with an error of its own.
    with warnings.catch_warnings():
        warnings.showwarning = show
        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
        try:
            return int(a.func(a) or 0)
        except (ValueError, TypeError, OSError, ImportError, KeyError, NotebookError, FloatingPointError) as exc:
            print(f"ignn-lab {a.command}: error: {_one_line(exc)}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
