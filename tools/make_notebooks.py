"""Write the kit's notebooks from source cells (keeps them output-free and reviewable). Run: python tools/make_notebooks.py"""

from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).resolve().parents[1] / "notebooks"


def notebook(cells, name):
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    out = []
    for kind, src, *tags in cells:
        c = nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src)
        if tags:
            c.metadata["tags"] = list(tags)
        c.id = f"{name[:2]}-cell-{len(out):02d}"  # deterministic: regenerating changes nothing
        out.append(c)
    nb.cells = out
    return nb


EVALUATE = [
    ("md", "# 03 · Evaluate\n\nPSNR/SSIM on the Y channel with the exact SR protocol (mod-crop, MATLAB bicubic LR with "
           "replicated borders, unrounded BT.601 Y, `scale`-pixel shave, Gaussian SSIM). Every number comes from "
           "`ignn_lab.lab.tasks.evaluate_task`, the same function `ignn-lab evaluate` calls; this notebook only "
           "displays what it writes (`results.json`, `table.md`, `psnr.png`).\n\n"
           "Run headless: `ignn-lab reproduce bicubic` or `ignn-lab run-notebook 03_evaluate -p model='\"bicubic\"' --out DIR`."),
    ("code", "from pathlib import Path\n\nfrom IPython.display import Markdown, display\n\n"
             "from ignn_lab.lab.tasks import evaluate_task\nfrom ignn_lab.viz.compare import summary_figure"),
    ("code", "model = \"bicubic\"            # bicubic, graphagg-star, a shipped name, a registry name or a checkpoint path\n"
             "sets = [\"Set5\", \"Set14\", \"B100\", \"Urban100\"]\n"
             "scales = [2, 3, 4]\n"
             "options = {}                  # model options, e.g. {\"self_ensemble\": true} (IGNN+), {\"device\": \"cuda\"}\n"
             "data_root = None              # default: IGNN_LAB_DATA or ../shared/datasets\n"
             "out = \"runs/03_evaluate\"\n"
             "limit = None                  # only the first N images of each set\n"
             "save_images = False\n"
             "progress = True", "parameters"),
    ("code", "results = evaluate_task(model, sets, scales, out=out, data_root=data_root, limit=limit,\n"
             "                        save_images=save_images, progress=progress, **options)"),
    ("code", "display(Markdown((Path(out) / \"table.md\").read_text()))"),
    ("code", "summary_figure(results)"),
    ("code", "print(f\"results: {Path(out) / 'results.json'}  ({results['provenance']['seconds']:.1f} s, \"\n"
             "      f\"{len(results['rows'])} image-scale rows)\")"),
]

TRAIN = [
    ("md", "# 02 · Train\n\nTrains a network with the kit's trainer (`ignn_lab.engine.train.fit`, the same as "
           "`ignn-lab train`), then scores its `best.pt` with the evaluation protocol. The run folder `out` holds "
           "`config.json`, `log.jsonl`, `curves.png`, `last.pt` and `best.pt`; the scores go to `out/results.json`. "
           "In JupyterLab the loss and validation-PSNR curves redraw while it trains; interrupting the kernel stops "
           "the run with `last.pt` saved, and running again with `resume = True` continues it exactly.\n\n"
           "Configs: `ignn-lab configs` (`smoke` takes about a minute, `lite-x2` is the CPU study). Run headless: "
           "`ignn-lab run-notebook 02_train -p config='\"smoke\"' -p live=false --out DIR`."),
    ("code", "from pathlib import Path\n\nfrom IPython.display import Image, Markdown, display\n\n"
             "from ignn_lab.engine.evaluate import format_table\n"
             "from ignn_lab.lab.training import run_config, train_and_evaluate"),
    ("code", "config = \"smoke\"              # a shipped config (ignn-lab configs) or a JSON file\n"
             "overrides = {}                 # config fields, e.g. {\"model\": \"edsr-lite\", \"model_overrides\": {\"k\": 5}}\n"
             "steps = None                   # None: the config's\n"
             "out = \"runs/02_train\"\n"
             "resume = None                  # None: a fresh run; True: continue out/last.pt; \"auto\": continue it if it matches, else restart\n"
             "max_minutes = None             # stop (saving last.pt) after this long; resume later\n"
             "device = \"cpu\"\n"
             "sets = [\"Set5\"]                # best.pt is scored on these at the end\n"
             "limit = None                   # only the first N images of each set\n"
             "self_ensemble = False          # also score the x8 self-ensemble (IGNN+)\n"
             "live = True                    # redraw the curves while training (JupyterLab); False: show curves.png\n"
             "progress = True\n"
             "data_root = None", "parameters"),
    ("code", "cfg = run_config(config, overrides, steps=steps, data_root=data_root)\n"
             "print(f\"{cfg.model} x{cfg.scale}: {cfg.steps} steps of {cfg.batch} patches of {cfg.patch_size}px, \"\n"
             "      f\"{cfg.schedule} lr {cfg.lr}, seed {cfg.seed}\")"),
    ("code", "results = train_and_evaluate(cfg, out, resume=resume, max_minutes=max_minutes, device=device, sets=sets,\n"
             "                             limit=limit, self_ensemble=self_ensemble, live=live, progress=progress)\n"
             "train = results[\"train\"]\n"
             "print(f\"{train['status']} at step {train['step']}/{train['steps']}; best validation PSNR-Y \"\n"
             "      f\"{train['best_psnr']}; run folder {train['run']}\")"),
    ("code", "if not live and (Path(out) / \"curves.png\").is_file():\n"
             "    display(Image(filename=str(Path(out) / \"curves.png\")))"),
    ("md", "## best.pt on the benchmark sets"),
    ("code", "display(Markdown(format_table(results[\"summary\"]) if results[\"summary\"] else\n"
             "                  \"training stopped before its last step: run again with `resume = True`\"))\n"
             "print(f\"results: {Path(out) / 'results.json'}\")"),
]

EXPLORE = [
    ("md", "# 01 · Explore the cross-scale graph\n\nFor one image (treated as HR) and one LR query patch: its k nearest "
           "patches in the son (the LR downscaled by the scale), the HR patches they contribute, raw and "
           "AdaPN-normalised, their aggregate beside the ground truth, and the recurrence map; with a trained IGNN "
           "(`model`), also the network's own neighbours of that patch, their learned edge weights and its SR crop "
           "beside bicubic and HR. Everything comes from `ignn_lab.lab.explorer.Explorer`; the static figure is the "
           "one `ignn-lab explore` writes, with its JSON record.\n\n"
           "Two graphs: the **image-space graph** is GraphAgg*'s (son = LR/scale, the `embedding`, `k`, `window` "
           "below); a model builds **its own graph** inside the network (IGNN-lite: pixel embedding, k = 3, window 8, "
           "over its features), shown separately.\n\n"
           "Run headless: `ignn-lab run-notebook 01_explore -p image='\"Urban100/img_004\"' --out DIR` (the "
           "interactive part needs JupyterLab: `make lab`)."),
    ("code", "import json\nfrom pathlib import Path\n\nfrom IPython.display import Image, display\n\n"
             "from ignn_lab.lab.explorer import Explorer\nfrom ignn_lab.viz.widgets import explorer_widget"),
    ("code", "image = \"skimage/astronaut\"   # a file or SET/NAME (skimage/…, Urban100/img_004, …)\n"
             "scale = 2\n"
             "query = None                   # (row, col) in LR pixels; None: the most recurrent textured patch\n"
             "k = 5\n"
             "window = 30                    # son patches; None: whole-image search\n"
             "patch_size = 3\n"
             "embedding = \"pixel\"           # pixel, vgg-random, vgg19\n"
             "model = None                   # None, a shipped checkpoint name or a checkpoint path\n"
             "data_root = None\n"
             "out = \"runs/01_explore\"", "parameters"),
    ("code", "ex = Explorer(image, scale=scale, k=k, window=window, patch_size=patch_size, embedding=embedding,\n"
             "              model=model, data_root=data_root)"),
    ("md", "## The static figure of `query`\n\nWhat `ignn-lab explore` writes: the figure and its JSON record."),
    ("code", "name = str(image).replace(\"/\", \"_\")\n"
             "info = ex.save_figure(Path(out) / f\"{name}_x{scale}.png\", query=tuple(query) if query else None)\n"
             "display(Image(filename=info[\"figure\"]))\n"
             "print(json.dumps({key: info[key] for key in (\"query\", \"neighbours\")}, indent=1, default=str))"),
    ("md", "## Interactive\n\nClick a patch in the LR image (or the recurrence map); the arrow keys move the query by "
           "one patch (click the panel first). Changing a setting rebuilds only what depends on it. "
           "\"save figure\" writes the static figure and JSON of the selected patch into `out`."),
    ("code", "explorer_widget(ex, out=out)"),
]

ABLATE = [
    ("md", "# 04 · Ablate\n\n**The learned model.** Each variant is a train config (the `lite-x2-*` configs switch one "
           "thing of `lite-x2`: AdaPN, edge weighting, graph position, k, window, same-scale, non-local, embedding; "
           "`edsr-lite-x2` has no graph), trained with the same budget, data and seed, then its `best.pt` is scored "
           "with the evaluation protocol and compared with the first variant. A variant trained elsewhere "
           "(`ignn-lab train`) is scored from its checkpoint instead (`checkpoints`). "
           "All numbers come from `ignn_lab.lab.ablate_learned.learned_ablation`.\n\n"
           "**GraphAgg\\*** is IGNN's cross-scale aggregation in the image domain with nothing learned: one option at "
           "a time from its defaults (pixel embedding, k = 5, window 30, AdaPN, uniform weights), next to bicubic, "
           "from `ignn_lab.lab.ablate.graphagg_ablation` (`ignn-lab ablate graphagg`).\n\n"
           "Each section writes `ablation.json`, `ablation.md` and `ablation.png` into `out/learned` and "
           "`out/graphagg`; `out/results.json` holds both. Tables with provenance: `ignn-lab reproduce adapn-ecn` "
           "(and `position`, `k-window`, `same-vs-cross`, `embedding`, `graphagg-star`)."),
    ("code", "from pathlib import Path\n\nfrom IPython.display import Image, Markdown, display\n\n"
             "from ignn_lab.lab.ablate import VARIANTS, graphagg_ablation\n"
             "from ignn_lab.lab.ablate_learned import ablation_results, learned_ablation"),
    ("code", "variants = None                               # learned: train configs or {label: {\"config\", \"overrides\"}};\n"
             "                                              # None: [\"lite-x2\", \"lite-x2-no-adapn\"]; [] skips\n"
             "budget = {\"steps\": 300}                       # the same for every variant; {} keeps the configs' own\n"
             "checkpoints = {}                              # label -> best.pt trained elsewhere: scored, not trained\n"
             "graphagg_variants = None                      # GraphAgg* names from VARIANTS (None: all but vgg-random); [] skips\n"
             "sets = [\"Set5\"]\n"
             "scales = [2]                                  # GraphAgg*; each learned variant is scored at its own scale\n"
             "limit = None                                  # only the first N images of each set\n"
             "device = \"cpu\"\n"
             "data_root = None\n"
             "progress = True\n"
             "out = \"runs/04_ablate\"", "parameters"),
    ("md", "## The learned model"),
    ("code", "learned = (learned_ablation(variants, out=Path(out) / \"learned\", budget=budget, checkpoints=checkpoints,\n"
             "                            sets=sets, limit=limit, device=device, data_root=data_root, progress=progress)\n"
             "           if variants != [] else None)"),
    ("code", "if learned:\n"
             "    display(Markdown((Path(out) / \"learned\" / \"ablation.md\").read_text()))\n"
             "    display(Image(filename=str(Path(out) / \"learned\" / \"ablation.png\")))"),
    ("md", "## GraphAgg\\*"),
    ("code", "print(\"known GraphAgg* variants:\", {name: opts for name, opts in VARIANTS.items()})\n"
             "graphagg = (graphagg_ablation(graphagg_variants, sets, scales, out=Path(out) / \"graphagg\",\n"
             "                              data_root=data_root, limit=limit, progress=progress)\n"
             "            if graphagg_variants != [] else None)"),
    ("code", "if graphagg:\n"
             "    display(Markdown((Path(out) / \"graphagg\" / \"ablation.md\").read_text()))\n"
             "    display(Image(filename=str(Path(out) / \"graphagg\" / \"ablation.png\")))"),
    ("code", "results = ablation_results(out, learned, graphagg, variants=variants, budget=budget,\n"
             "                           graphagg_variants=graphagg_variants, sets=sets, scales=scales, limit=limit)\n"
             "print(f\"results: {Path(out) / 'results.json'} ({len(results['summary'])} cells)\")"),
]

#: Every notebook of ``notebooks/``: name -> source cells.
NOTEBOOKS = {"01_explore": EXPLORE, "02_train": TRAIN, "03_evaluate": EVALUATE, "04_ablate": ABLATE}


def write_all(folder: Path = HERE) -> list[Path]:
    folder.mkdir(exist_ok=True)
    paths = []
    for name, cells in NOTEBOOKS.items():
        nbf.write(notebook(cells, name), folder / f"{name}.ipynb")
        paths.append(folder / f"{name}.ipynb")
    return paths


if __name__ == "__main__":
    for path in write_all():
        print("wrote", path)
