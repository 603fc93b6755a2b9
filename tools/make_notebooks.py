"""Write the kit's notebooks from source cells (keeps them output-free and reviewable). Run: python tools/make_notebooks.py"""

from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).resolve().parents[1] / "notebooks"


def notebook(cells):
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    out = []
    for kind, src, *tags in cells:
        c = nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src)
        if tags:
            c.metadata["tags"] = list(tags)
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

if __name__ == "__main__":
    HERE.mkdir(exist_ok=True)
    nbf.write(notebook(EVALUATE), HERE / "03_evaluate.ipynb")
    print("wrote", HERE / "03_evaluate.ipynb")
