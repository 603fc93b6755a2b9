"""``ignn-lab``: a thin command-line shell over ``ignn_lab.lab`` (argparse → task functions)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _pair(text: str) -> tuple[int, int]:
    vals = _ints(text)
    if len(vals) != 2:
        raise argparse.ArgumentTypeError(f"expected ROW,COL, got {text!r}")
    return vals[0], vals[1]


def _window(text: str) -> int | None:
    if text.lower() in ("none", "global", "0"):
        return None
    return int(text)


def _kv(items: list[str] | None) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise SystemExit(f"parameter {item!r}: expected key=value")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def _model_opts(a) -> dict:
    opts = {}
    for key in ("embedding", "k", "window", "device", "dtype", "tile"):
        v = getattr(a, key, None)
        if v is not None:
            opts[key] = v
    if getattr(a, "self_ensemble", False):
        opts["self_ensemble"] = True
    if getattr(a, "weighting", None):
        opts["weighting"] = a.weighting
    if getattr(a, "no_adapn", False):
        opts["adapn"] = False
    if getattr(a, "same_scale", False):
        opts["cross_scale"] = False
    return opts


def cmd_data_check(a) -> int:
    from ignn_lab.data.datasets import check_data_root

    rep = check_data_root(a.data_root, a.sets, progress=not a.quiet)
    print(f"data root: {rep.root}")
    print(f"checked {rep.checked} files: {rep.ok} ok, {len(rep.missing)} missing, {len(rep.altered)} altered")
    for p in rep.missing:
        print(f"  missing: {p}")
    for p in rep.altered:
        print(f"  altered (sha256 differs from MANIFEST.tsv): {p}")
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
                    device=a.device, data_root=a.data_root, progress=not a.quiet)
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
    if a.what == "sweep":
        from ignn_lab.lab.lite_sweep import parse_bodies, run as sweep

        sweep(a.json, parse_bodies(a.bodies), minutes=a.minutes, jobs=a.jobs, threads=a.threads)
        print((Path(a.json).with_suffix(".md")).read_text(), end="")
        print(f"wrote {a.json}")
        return 0
    if a.what == "knn":
        from ignn_lab.lab.bench_knn import run
    elif a.what == "eval":
        from ignn_lab.lab.bench_eval import run
    else:
        from ignn_lab.lab.bench_models import run
    run(a.json, quick=a.quick)
    print(f"wrote {a.json}")
    return 0


def cmd_upscale(a) -> int:
    from ignn_lab.lab.upscale import upscale

    paths = upscale(a.inputs, model=a.model, scale=a.scale, out=a.out, tile=a.tile,
                    self_ensemble=a.self_ensemble, device=a.device, dtype=a.dtype)
    print(f"wrote {len(paths)} image(s) to {a.out}")
    return 0


def cmd_models(a) -> int:
    from ignn_lab.models import list_models

    print("\n".join(["bicubic", "graphagg-star", *list_models()]))
    return 0


def cmd_train(a) -> int:
    from ignn_lab.lab.tasks import train_task

    res = train_task(a.config, a.out, overrides=a.set, resume=a.resume, device=a.device,
                     max_minutes=a.max_minutes, progress=not a.quiet)
    best = f"{res.best_psnr:.3f} dB" if res.best_psnr is not None else "–"
    print(f"{res.status} at step {res.step}/{res.steps} ({res.seconds / 60:.1f} min in total); best validation "
          f"PSNR-Y {best}; run folder {res.out}")
    if res.status != "finished":
        print(f"continue with: ignn-lab train --out {res.out} --resume")
    return 0 if res.status != "interrupted" else 130


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

    p = argparse.ArgumentParser(prog="ignn-lab", description="Cross-scale internal graph SR research kit.")
    p.add_argument("--version", action="version", version=f"ignn-lab {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, data=True):
        if data:
            sp.add_argument("--data-root", help="folder with Set5/ … (default: IGNN_LAB_DATA or ../shared/datasets)")
        sp.add_argument("--quiet", action="store_true", help="no progress bars")

    d = sub.add_parser("data", help="data root utilities")
    dsub = d.add_subparsers(dest="data_command", required=True)
    dc = dsub.add_parser("check", help="verify the data root against MANIFEST.tsv (sha256)")
    dc.add_argument("--sets", type=_csv, help="only these sets (comma-separated)")
    common(dc)
    dc.set_defaults(func=cmd_data_check)
    dl = dsub.add_parser("list", help="list the known sets, or the images of one set")
    dl.add_argument("set", nargs="?")
    common(dl)
    dl.set_defaults(func=cmd_data_list)

    def model_args(sp):
        sp.add_argument("--embedding", help="matching embedding (graphagg-star): pixel, vgg-random, vgg19")
        sp.add_argument("--k", type=int, help="neighbours (graphagg-star)")
        sp.add_argument("--window", type=_window, help="search window in son patches, or 'none' (graphagg-star)")
        sp.add_argument("--weighting", choices=["uniform", "distance"], help="neighbour weights (graphagg-star)")
        sp.add_argument("--no-adapn", action="store_true", help="skip AdaPN normalisation (graphagg-star)")
        sp.add_argument("--same-scale", action="store_true", help="same-scale neighbours, RQ2 (graphagg-star)")
        sp.add_argument("--self-ensemble", action="store_true", help="×8 flip/transpose ensemble (networks)")
        sp.add_argument("--tile", type=int, help="LR tile size for tiled inference (networks)")
        sp.add_argument("--device", help="cpu, cuda, cuda:1 … (networks)")
        sp.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="networks; half types on GPU")

    e = sub.add_parser("evaluate", help="PSNR/SSIM (Y) on benchmark sets with the exact protocol")
    e.add_argument("--model", default="bicubic", help="bicubic, graphagg-star, a registry name or a checkpoint")
    e.add_argument("--sets", type=_csv, default=["Set5", "Set14", "B100", "Urban100"])
    e.add_argument("--scales", type=_ints, default=[2, 3, 4])
    e.add_argument("--out", required=True, help="output folder (results.json, table.md, psnr.png)")
    e.add_argument("--save-images", action="store_true", help="write the SR PNGs to OUT/images/")
    e.add_argument("--limit", type=int, help="only the first N images of each set")
    model_args(e)
    common(e)
    e.set_defaults(func=cmd_evaluate)

    ab = sub.add_parser("ablate", help="GraphAgg* ablation: one switch at a time, scored with the protocol")
    ab.add_argument("what", choices=["graphagg"])
    ab.add_argument("--variants", type=_csv, help="names (default: all but vgg-random): default, no-adapn, "
                    "distance-weighting, k1, k10, global-search, same-scale, vgg-random")
    ab.add_argument("--sets", type=_csv, default=["Set5"])
    ab.add_argument("--scales", type=_ints, default=[2])
    ab.add_argument("--limit", type=int, help="only the first N images of each set")
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
    r.add_argument("--train-commands", action="store_true",
                   help="lite: print the commands that train the ablation variants, and exit")
    common(r)
    r.set_defaults(func=cmd_reproduce)

    dm = sub.add_parser("demo", help="the main job on the embedded skimage set")
    dm.add_argument("--out", default="runs/demo")
    dm.add_argument("--scales", type=_ints, default=[2, 4])
    dm.add_argument("--no-explore", action="store_true", help="skip the match figures")
    common(dm, data=False)
    dm.set_defaults(func=cmd_demo)

    x = sub.add_parser("explore", help="figure of the cross-scale matches of one query patch")
    x.add_argument("image", help="a path or SET/NAME (e.g. skimage/astronaut, Urban100/img_004)")
    x.add_argument("--scale", type=int, default=2)
    x.add_argument("--query", type=_pair, help="ROW,COL in LR pixels (default: the most recurrent patch)")
    x.add_argument("--k", type=int, default=5)
    x.add_argument("--window", type=_window, default=30)
    x.add_argument("--embedding", default="pixel")
    x.add_argument("--patch-size", type=int, default=3)
    x.add_argument("--out", default="fig.png")
    common(x)
    x.set_defaults(func=cmd_explore)

    b = sub.add_parser("bench", help="benchmarks that write JSON (and a PNG chart beside it)")
    b.add_argument("what", choices=["knn", "models", "eval", "sweep"])
    b.add_argument("--json", required=True, help="output JSON path")
    b.add_argument("--quick", action="store_true", help="a reduced run that takes seconds")
    b.add_argument("--bodies", default="8x32x1,12x32x1,16x32x1,6x48x1,24x16x1,44x16x0.1,12x32x0.1,12x32x1:none",
                   help="sweep: bodies BLOCKSxWIDTHxRES_SCALE[:amp]")
    b.add_argument("--minutes", type=float, default=12.0, help="sweep: CPU budget per body")
    b.add_argument("--jobs", type=int, default=2, help="sweep: runs at once")
    b.add_argument("--threads", type=int, default=1, help="sweep: torch threads per run")
    b.set_defaults(func=cmd_bench)

    u = sub.add_parser("upscale", help="super-resolve images without ground truth")
    u.add_argument("inputs", help="an image or a folder of images")
    u.add_argument("--model", required=True, help="a checkpoint, a released IGNN .pth, or a registry name")
    u.add_argument("--scale", type=int, required=True)
    u.add_argument("--out", required=True)
    u.add_argument("--tile", type=int)
    u.add_argument("--self-ensemble", action="store_true")
    u.add_argument("--device", default="cpu")
    u.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
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

    cf = sub.add_parser("configs", help="list the shipped training configs")
    cf.set_defaults(func=cmd_configs)

    m = sub.add_parser("models", help="list the model names")
    m.set_defaults(func=cmd_models)

    n = sub.add_parser("run-notebook", help="execute a notebook with papermill parameters")
    n.add_argument("name", nargs="?", help="e.g. 03_evaluate")
    n.add_argument("-p", "--param", action="append", help="key=value (JSON values allowed)")
    n.add_argument("--out")
    n.add_argument("--plan", metavar="FILE", help="run a plan file written by ignn-lab reproduce (its notebook, "
                   "parameters and folder; records the key)")
    common(n, data=False)
    n.set_defaults(func=cmd_run_notebook)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    try:
        return int(a.func(a) or 0)
    except (FileNotFoundError, ValueError, ImportError, KeyError) as exc:
        print(f"ignn-lab {a.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
