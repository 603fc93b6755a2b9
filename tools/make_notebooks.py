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
    ("code", "model = \"bicubic\"            # bicubic, graphagg-star, a registry name or a checkpoint path\n"
             "sets = [\"Set5\", \"Set14\", \"B100\", \"Urban100\"]\n"
             "scales = [2, 3, 4]\n"
             "data_root = None              # default: IGNN_LAB_DATA or ../shared/datasets\n"
             "out = \"runs/03_evaluate\"\n"
             "limit = None                  # only the first N images of each set\n"
             "save_images = False", "parameters"),
    ("code", "results = evaluate_task(model, sets, scales, out=out, data_root=data_root, limit=limit,\n"
             "                        save_images=save_images)"),
    ("code", "display(Markdown((Path(out) / \"table.md\").read_text()))"),
    ("code", "summary_figure(results)"),
    ("code", "print(f\"results: {Path(out) / 'results.json'}  ({results['provenance']['seconds']:.1f} s, \"\n"
             "      f\"{len(results['rows'])} image-scale rows)\")"),
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
    ("md", "# 04 · Ablate GraphAgg*\n\nGraphAgg* is IGNN's cross-scale aggregation in the image domain with nothing "
           "learned. This notebook switches one option at a time from the defaults (pixel embedding, k = 5, window 30, "
           "AdaPN, uniform weights) and scores every variant with the evaluation protocol, next to bicubic. All numbers "
           "come from `ignn_lab.lab.ablate.graphagg_ablation`, the function behind `ignn-lab ablate graphagg`; it "
           "writes `ablation.json`, `ablation.md`, `ablation.png` and one `results.json` per variant.\n\n"
           "Run headless: `ignn-lab run-notebook 04_ablate -p sets='[\"Set5\",\"Set14\"]' --out DIR`."),
    ("code", "from pathlib import Path\n\nfrom IPython.display import Markdown, display\n\n"
             "from ignn_lab.lab.ablate import VARIANTS, ablation_figure, graphagg_ablation"),
    ("code", "variants = None                # names from VARIANTS (None: all but vgg-random), or a dict name -> options\n"
             "sets = [\"Set5\"]\n"
             "scales = [2]\n"
             "limit = None                   # only the first N images of each set\n"
             "data_root = None\n"
             "out = \"runs/04_ablate\"", "parameters"),
    ("code", "print(\"known variants:\", {name: opts for name, opts in VARIANTS.items()})\n"
             "report = graphagg_ablation(variants, sets, scales, out=out, data_root=data_root, limit=limit)"),
    ("code", "display(Markdown((Path(out) / \"ablation.md\").read_text()))"),
    ("code", "ablation_figure(report)"),
]

if __name__ == "__main__":
    HERE.mkdir(exist_ok=True)
    for name, cells in (("01_explore", EXPLORE), ("03_evaluate", EVALUATE), ("04_ablate", ABLATE)):
        nbf.write(notebook(cells, name), HERE / f"{name}.ipynb")
        print("wrote", HERE / f"{name}.ipynb")
