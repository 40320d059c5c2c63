"""Writes examples/hippocampus.ipynb (unexecuted) from the cells below: edit here, then run
``python examples/make_hippocampus_notebook.py``; tests/test_notebook.py executes the result."""

from pathlib import Path

import nbformat as nbf

md = nbf.v4.new_markdown_cell
code = nbf.v4.new_code_cell
cells = [
    md("""# Hippocampus segmentation with fastseg, step by step

The Medical Segmentation Decathlon hippocampus task (Task04): T1-weighted MR crops around the
hippocampus, labels 1 = anterior, 2 = posterior. This notebook walks through the whole workflow
on it: look at the data, convert it into a fastseg store, plan, train a 3D U-Net on the CPU,
predict the validation fold, evaluate, and test whether post-processing helps.

Every step has a command-line twin (shown in each section); `benchmarks/hippocampus.py` runs
them all on the full data set. Three environment variables make the notebook cheap enough to
run in CI: `FASTSEG_EXAMPLE_CASES` (how many cases, 0 = all 208), `FASTSEG_EXAMPLE_MINUTES`
(training budget) and `FASTSEG_EXAMPLE_OUT` (where to write); `FASTSEG_DATA` says where the
data set is."""),
    code("""import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import fastseg

DATA = Path(os.environ.get("FASTSEG_DATA", "../../shared/data/hippocampus"))
OUT = Path(os.environ.get("FASTSEG_EXAMPLE_OUT", "hippocampus_example"))
CASES = int(os.environ.get("FASTSEG_EXAMPLE_CASES", "0"))  # 0 = all 208 cases
MINUTES = float(os.environ.get("FASTSEG_EXAMPLE_MINUTES", "40"))
OUT.mkdir(parents=True, exist_ok=True)
print(fastseg.__version__, "data:", DATA.resolve(), "cases:", CASES or "all", "minutes:", MINUTES)"""),
    md("""## 1. Look at the data

Images are read into a `fastseg.io.Volume`: the array is `(z, y, x)`, the spacing is in mm in
the same order, and the affine maps voxel indices to RAS+ world millimetres. The tri-planar view
cuts through the centre of the label (CLI: `fastseg view IMAGE --label LABEL --out view.png`)."""),
    code("""from fastseg.io import read
from fastseg.report import triplanar_figure

case = sorted(p.name for p in (DATA / "imagesTr").glob("*.nii.gz"))[0]
image, label = read(DATA / "imagesTr" / case), read(DATA / "labelsTr" / case)
print(case, "shape (z, y, x):", image.array.shape, "spacing mm:", image.spacing,
      "dtype:", image.array.dtype, "classes:", np.unique(label.array).tolist())
triplanar_figure(image, label, title=case, label_names={1: "anterior", 2: "posterior"})"""),
    md("""## 2. Convert into a store

`fastseg convert` reorients every case to RAS, crops it to its non-zero region, resamples it to
the median spacing (1 mm here) and writes it into one chunked, compressed Zarr store, with the
foreground coordinates the patch sampler needs. MR intensities are z-scored per image when read.
A re-run only converts what is missing. For a subset, we convert a folder of links to the first
cases (CLI: `fastseg convert DATA store.zarr`)."""),
    code("""from fastseg.store import Store, convert

source = DATA
if CASES:
    source = OUT / "subset"
    for sub in ("imagesTr", "labelsTr"):
        (source / sub).mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in (DATA / "imagesTr").glob("*.nii.gz"))[:CASES]
    for name in names:
        for sub in ("imagesTr", "labelsTr"):
            link = source / sub / name
            if not link.exists():
                link.symlink_to((DATA / sub / name).resolve())
    doc = json.loads((DATA / "dataset.json").read_text())
    doc["training"] = [e for e in doc["training"] if Path(e["image"]).name in names]
    doc["numTraining"] = len(doc["training"])
    (source / "dataset.json").write_text(json.dumps(doc, indent=1))

report = convert(source, OUT / "store.zarr", progress=False)
store = Store.open(OUT / "store.zarr")
print(store)
print("target spacing:", store.preprocessing["target_spacing"],
      "median stored shape:", np.median([store[c].shape for c in store.cases], axis=0))"""),
    md("""## 3. Plan

`fastseg plan` reads the store's fingerprint and proposes the configuration the way nnU-Net plans
its own: the patch size that covers the typical case, the network depth that this patch allows,
the batch size, the time budget — for the CPU here. It also decides which axes the flips may
mirror: in every case the anterior hippocampus lies in front of (and below) the posterior one, so
a mirrored patch would show the two classes in swapped places; the plan mirrors only left–right.
The plan is written into the store, and
`train` uses it unless a configuration file says otherwise (CLI: `fastseg plan store.zarr`)."""),
    code("""from fastseg.plan import format_plan, plan_training, write_plan

plan = plan_training(store, device="cpu")
write_plan(store, plan)
print(format_plan(plan))"""),
    md("""## 4. Train

A 3D U-Net with the fused Dice + cross-entropy loss, patches drawn from the store by worker
processes (a third centred on foreground), augmented on the fly (rotation, scaling, elastic
deformation, flips, intensity), validated on whole cases of fold 0 with the metrics engine.
Everything lands in a run directory: `run.json`, `config.yaml`, checkpoints, the validation
metrics and the post-processing chosen on them (CLI: `fastseg train store.zarr --out run3d`)."""),
    code("""from fastseg.train import train_run

run_dir = OUT / "run3d"
result = train_run(OUT / "store.zarr", run_dir, overrides={"schedule.time_budget_s": MINUTES * 60},
                   progress=False, log=None)
spec = json.loads((run_dir / "run.json").read_text())
print(result)
print("validation cases:", len(spec["split"]["validation"]))"""),
    code("""history = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
train_log = [h for h in history if "loss" in h and "iteration" in h]
if train_log:
    plt.plot([h["iteration"] for h in train_log], [h["loss"] for h in train_log])
    plt.xlabel("iteration")
    plt.ylabel("training loss")
    plt.show()"""),
    md("""## 5. Predict the validation fold

`fastseg predict` applies the training preprocessing recorded in the run to each scan, runs the
sliding window with Gaussian weighting, undoes resampling and cropping and writes each mask on
its scan's original grid, named like the scan, so `evaluate` can pair them. We predict with the
selected post-processing and without it (CLI: `fastseg predict run3d IMAGES pred`)."""),
    code("""from fastseg.infer import predict

val_images, val_labels = OUT / "val_images", OUT / "val_labels"
for folder in (val_images, val_labels):
    folder.mkdir(exist_ok=True)
for case_id in spec["split"]["validation"]:
    for src, folder in ((DATA / "imagesTr", val_images), (DATA / "labelsTr", val_labels)):
        link = folder / f"{case_id}.nii.gz"
        if not link.exists():
            link.symlink_to((src / f"{case_id}.nii.gz").resolve())

predict(run_dir, val_images, OUT / "pred", progress=False)
predict(run_dir, val_images, OUT / "pred_raw", postprocess=False, progress=False)
print(sorted(p.name for p in (OUT / "pred").iterdir())[:5])"""),
    md("""## 6. Evaluate

Dice, Jaccard, Hausdorff, HD95, average Hausdorff distance (AVD), ASSD, volume similarity and NSD,
per case and label, exactly as DESIGN.md defines them (CLI: `fastseg evaluate --pred pred --ref
LABELS --out metrics.csv`)."""),
    code("""from fastseg.metrics import evaluate_folders, format_summary, summarize

rows = evaluate_folders(OUT / "pred", val_labels, OUT / "metrics.csv", progress=False)
evaluate_folders(OUT / "pred_raw", val_labels, OUT / "metrics_raw.csv", progress=False)
print(format_summary(summarize(rows)))"""),
    code("""worst = min((r for r in rows if int(r["label"]) == 1), key=lambda r: float(r["dice"]))
pred = read(OUT / "pred" / f"{worst['case']}.nii.gz")
triplanar_figure(read(val_images / f"{worst['case']}.nii.gz"), pred,
                 title=f"{worst['case']}: lowest anterior Dice {float(worst['dice']):.3f}")"""),
    md("""## 7. Compare: does the post-processing help?

`fastseg compare` pairs the two tables by case, checks normality of the differences
(Shapiro–Wilk) and picks the paired t-test or the Wilcoxon signed-rank test accordingly, and says
why (CLI: `fastseg compare metrics.csv metrics_raw.csv`)."""),
    code("""from fastseg.stats import compare_tables

for label, result in compare_tables(OUT / "metrics.csv", OUT / "metrics_raw.csv").items():
    print(f"label {label}:")
    print(result.summary())"""),
]
nb = nbf.v4.new_notebook(
    cells=cells,
    metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    },
)
nbf.write(nb, Path(__file__).with_name("hippocampus.ipynb"))
