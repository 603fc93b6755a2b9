"""``ignn-lab``: a thin command-line shell over ``ignn_lab.lab`` (argparse → task functions)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

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
    from ignn_lab.lab.tasks import reproduce

    reproduce(a.what, out=a.out, sets=a.sets, scales=a.scales, data_root=a.data_root, progress=not a.quiet)
    print((Path(a.out) / "table.md").read_text(), end="")
    print(f"wrote {Path(a.out) / 'results.json'} and the executed notebook in {a.out}")
    return 0


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

    r = sub.add_parser("reproduce", help="reproduce a published table headlessly (runs notebooks/03_evaluate)")
    r.add_argument("what", choices=["bicubic"])
    r.add_argument("--out", default="runs/reproduce-bicubic")
    r.add_argument("--sets", type=_sets)
    r.add_argument("--scales", type=_scales)
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

    cf = sub.add_parser("configs", help="list the shipped training configs")
    cf.set_defaults(func=cmd_configs)

    m = sub.add_parser("models", help="list the model names")
    m.set_defaults(func=cmd_models)

    n = sub.add_parser("run-notebook", help="execute a notebook with papermill parameters")
    n.add_argument("name", help="e.g. 03_evaluate")
    n.add_argument("-p", "--param", action="append", help="key=value (JSON values allowed); the names are the "
                   "notebook's parameters")
    n.add_argument("--out", required=True, help="output folder: the executed notebook and, for a notebook with "
                   "an 'out' parameter, its results")
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
    import warnings

    from PIL import Image

    from ignn_lab.lab.notebooks import NotebookError

    parser = build_parser()
    a = parser.parse_args(argv)

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"ignn-lab {a.command}: warning: {' '.join(str(message).split())}", file=file or sys.stderr)

    # The command line is the application: it decides how warnings look (one line each). PIL's
    # decompression-bomb warning is dropped: read_image refuses such images with an error of its own.
    with warnings.catch_warnings():
        warnings.showwarning = show
        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
        try:
            return int(a.func(a) or 0)
        except (ValueError, TypeError, OSError, ImportError, KeyError, NotebookError) as exc:
            print(f"ignn-lab {a.command}: error: {_one_line(exc)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:  # one line, not a traceback; output sets were discarded on the way out
            print(f"ignn-lab {a.command}: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
