"""``fastseg <command>``: a thin command line; every command calls the Python API."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence

from fastseg.errors import FastsegError, InputError

Handler = Callable[[argparse.Namespace], int]


def _cmd_info(args: argparse.Namespace) -> int:
    from fastseg._info import format_info, info

    data = info()
    print(json.dumps(data, indent=2) if args.json else format_info(data))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from fastseg.demo import run_demo

    run_demo(out_dir=args.out, minutes=args.minutes, seed=args.seed)
    return 0


def _cmd_view(args: argparse.Namespace) -> int:
    from fastseg import io
    from fastseg.report import save_triplanar

    image = io.read(args.case)
    label = io.read(args.label) if args.label else None
    if label is not None:
        io.check_pair(image, label, image_path=args.case, label_path=args.label)
    path = save_triplanar(args.out, image, label, window=args.window, title=args.title)
    print(f"wrote {path}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from fastseg.stats import compare_tables

    results = compare_tables(
        args.a,
        args.b,
        metric=args.metric,
        by=args.by or None,
        alpha=args.alpha,
        alternative=args.alternative,
        drop_nonfinite=args.drop_nonfinite,
    )
    for group, result in results.items():
        print(f"[{args.by or 'all'} {group}] {args.metric}")
        print(result.summary())
    if args.out:
        from fastseg._atomic import write_text_atomic

        report = {
            "metric": args.metric,
            "by": args.by,
            "results": {group: result.to_dict() for group, result in results.items()},
        }
        write_text_atomic(args.out, json.dumps(report, indent=2, allow_nan=False))
        print(f"wrote {args.out}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from fastseg.metrics import evaluate_folders, format_summary, summarize

    labels = [int(v) for v in args.labels.split(",")] if args.labels else None
    rows = evaluate_folders(
        args.pred,
        args.ref,
        args.out,
        labels=labels,
        workers=args.workers,
        hd95=args.hd95,
        nsd_tolerance=args.nsd_tolerance,
        allow_missing=args.allow_missing,
        scheduler=args.scheduler,
        progress=not args.quiet,
        device=args.device,
    )
    print(format_summary(summarize(rows)))
    print(f"wrote {len(rows)} rows to {args.out}")
    return 0


def _cmd_fuse(args: argparse.Namespace) -> int:
    from fastseg import io
    from fastseg.postprocess import fuse

    fused = fuse(args.segmentations, method=args.method)
    path = io.write(fused, args.out)
    print(f"wrote {path}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from fastseg.report import write_html_report

    path = write_html_report(args.metrics, args.out, compare_csv=args.compare, title=args.title)
    print(f"wrote {path}")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from fastseg.store import convert

    report = convert(
        args.src,
        args.dst,
        spacing=args.spacing,
        modality=args.modality,
        workers=args.workers,
        scheduler=args.scheduler,
        bias_field=args.bias_field,
        register=args.register,
        overwrite=args.overwrite,
    )
    print(report.summary())
    return 0 if report.ok else 1


def _cmd_augment_preview(args: argparse.Namespace) -> int:
    from fastseg import io
    from fastseg.augment import Pipeline, default_config, save_preview

    image = io.read(args.case)
    label = io.read(args.label) if args.label else None
    if label is not None:
        io.check_pair(image, label, image_path=args.case, label_path=args.label)
    pipeline = Pipeline.from_yaml(args.config) if args.config else Pipeline(default_config())
    path = save_preview(
        image.array.astype("float32"),
        None if label is None else io.label_map(label, f"--label {args.label}"),
        pipeline,
        args.out,
        n=args.n,
        seed=args.seed,
        spacing=image.spacing,
    )
    print(f"wrote {path}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from fastseg.infer import predict

    report = predict(
        args.run,
        args.input,
        args.output,
        device=args.device,
        tta=args.tta,
        checkpoint=args.checkpoint,
        probabilities=args.probabilities_format or args.probabilities,
        postprocess=not args.no_postprocess,
        overlap=args.overlap,
        batch_size=args.batch_size,
        progress=not args.quiet,
        resume=args.resume,
    )
    print(report.summary())
    return 0 if report.ok else 1


def _cmd_plan(args: argparse.Namespace) -> int:
    from fastseg.plan import format_plan, plan_training, write_plan
    from fastseg.store import Store

    store = Store.open(args.store)
    plan = plan_training(
        store, device=args.device, memory_gb=args.memory_gb, time_budget_s=args.time_budget
    )
    if not args.dry_run:
        write_plan(store, plan)
    print(json.dumps(plan, indent=2) if args.json else format_plan(plan))
    if not args.dry_run:
        print(f"wrote training_plan into {store.url}")
    return 0


def _cmd_profile(args: argparse.Namespace) -> int:
    from fastseg.data import profile

    report = profile(
        args.store,
        config=args.config,
        seconds=args.seconds,
        batches=args.batches,
        device=args.device,
    )
    print(report.summary())
    if args.json:
        from fastseg._atomic import write_text_atomic

        write_text_atomic(args.json, json.dumps(report.to_dict(), indent=2, allow_nan=False))
        print(f"wrote {args.json}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    import yaml

    from fastseg.train import train_run

    overrides: dict[str, object] = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise InputError(f"--set: expected SECTION.KEY=VALUE, got {item!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    flags = {
        "split.fold": args.fold,
        "training.device": args.device,
        "training.seed": args.seed,
        "schedule.max_iterations": args.max_iterations,
        "schedule.time_budget_s": args.time_budget,
        "data.workers": args.workers,
    }
    overrides.update({k: v for k, v in flags.items() if v is not None})
    result = train_run(
        args.store,
        args.out,
        config=args.config,
        resume=args.resume,
        overrides=overrides or None,
        progress=not args.quiet,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        best = "" if result.best_score is None else f", best mean Dice {result.best_score:.4f}"
        print(
            f"trained {result.iterations} iterations in {result.seconds:.0f} s "
            f"(stopped by {result.stopped_by}){best} → {result.run_dir}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastseg", description="Deep-learning segmentation of 3D CT and MR images."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="version, native build, CUDA, GPU and peer libraries")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(handler=_cmd_info)

    p = sub.add_parser("demo", help="synthetic CT phantoms through the whole workflow")
    p.add_argument("--out", default="fastseg_demo", help="output folder (default: ./fastseg_demo)")
    p.add_argument("--minutes", type=float, default=4.0, help="training time budget in minutes")
    p.add_argument("--seed", type=int, default=0, help="random seed of phantoms and training")
    p.set_defaults(handler=_cmd_demo)

    p = sub.add_parser("view", help="tri-planar PNG of a scan, with a label overlay")
    p.add_argument("case", help="image file or DICOM folder")
    p.add_argument("--label", help="label map on the same grid")
    p.add_argument("--window", help="lung, soft, bone or WIDTH,LEVEL in HU (default: percentiles)")
    p.add_argument("--title")
    p.add_argument("--out", required=True, help="output .png")
    p.set_defaults(handler=_cmd_view)

    p = sub.add_parser("evaluate", help="metrics of predictions against references, per label")
    p.add_argument("--pred", required=True, help="folder of predicted label maps")
    p.add_argument("--ref", required=True, help="folder of reference label maps (same file names)")
    p.add_argument("--out", required=True, help="metrics CSV, one row per case and label")
    p.add_argument("--labels", help="comma-separated labels (default: all present)")
    p.add_argument("--workers", type=int, help="threads (default: all cores)")
    p.add_argument("--hd95", choices=["max_directed", "pooled"], default="max_directed")
    p.add_argument("--nsd-tolerance", type=float, default=1.0, help="NSD tolerance in mm")
    p.add_argument(
        "--allow-missing", action="store_true", help="leave out cases with no prediction"
    )
    p.add_argument("--scheduler", help="address of a Dask scheduler to spread the pairs over")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_cmd_evaluate)

    p = sub.add_parser("fuse", help="fuse several segmentations of one scan (vote or STAPLE)")
    p.add_argument("segmentations", nargs="+", help="label maps of the same scan")
    p.add_argument("--method", choices=["vote", "staple", "staple_multilabel"], default="vote")
    p.add_argument("--out", required=True, help="fused label map")
    p.set_defaults(handler=_cmd_fuse)

    p = sub.add_parser("report", help="self-contained HTML report of a metrics table")
    p.add_argument("--metrics", required=True, help="metrics CSV from `fastseg evaluate`")
    p.add_argument("--compare", help="a second method's metrics CSV to test against")
    p.add_argument("--title")
    p.add_argument("--out", required=True, help="output .html")
    p.set_defaults(handler=_cmd_report)

    p = sub.add_parser("convert", help="convert a dataset into a fastseg Zarr store")
    p.add_argument("src", help="MSD/nnU-Net folder, folder of images, or of DICOM series")
    p.add_argument("dst", help="store path or fsspec URL")
    p.add_argument(
        "--spacing",
        type=float,
        nargs=3,
        metavar=("Z", "Y", "X"),
        help="target spacing in mm (default: the dataset's median)",
    )
    p.add_argument("--modality", choices=["ct", "mr"])
    p.add_argument("--workers", type=int, help="local worker processes (default: all CPUs)")
    p.add_argument("--scheduler", help="address of a Dask scheduler to run on")
    p.add_argument(
        "--bias-field", "--n4", action="store_true", help="N4 bias-field correction (MR)"
    )
    p.add_argument(
        "--register",
        choices=["rigid", "affine"],
        help="register other channels to the first when not on one grid",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing store")
    p.set_defaults(handler=_cmd_convert)

    p = sub.add_parser(
        "augment-preview", help="PNG of a case before and after random augmentations"
    )
    p.add_argument("case", help="image file or DICOM folder")
    p.add_argument("--label", help="label map on the same grid")
    p.add_argument("--config", help="augmentation YAML (default: nnU-Net-like pipeline)")
    p.add_argument("-n", type=int, default=4, help="number of random draws (default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output .png")
    p.set_defaults(handler=_cmd_augment_preview)

    p = sub.add_parser("predict", help="segment scans with a trained run (original geometry)")
    p.add_argument("run", help="run directory written by `fastseg train`")
    p.add_argument("input", help="image file, folder of images (_0000 channels grouped) or store")
    p.add_argument("output", help="output folder (or output file for one input file)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument(
        "--tta",
        action="store_true",
        help="mirror test-time augmentation over the run's data.mirror_axes",
    )
    p.add_argument("--checkpoint", choices=["best", "last"], default="best")
    p.add_argument(
        "--probabilities", action="store_true", help="also write <name>_probabilities.npz"
    )
    p.add_argument(
        "--probabilities-format",
        choices=["npz", "nifti"],
        help="npz (nnU-Net's) or nifti (a 4D .nii.gz for viewers); implies --probabilities",
    )
    p.add_argument(
        "--no-postprocess", action="store_true", help="ignore the run's postprocessing.json"
    )
    p.add_argument("--overlap", type=float, help="sliding-window overlap (default: the run's)")
    p.add_argument("--batch-size", type=int, default=1, help="windows per forward pass (default 1)")
    p.add_argument(
        "--continue",
        dest="resume",
        action="store_true",
        help="skip cases whose outputs exist (continue an interrupted run)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_cmd_predict)

    p = sub.add_parser("plan", help="propose a training configuration for a store")
    p.add_argument("store", help="store path or fsspec URL")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="training device")
    p.add_argument("--memory-gb", type=float, help="memory budget (default: 8 GPU, 4 CPU)")
    p.add_argument("--time-budget", type=float, help="training seconds (default: 2400 CPU)")
    p.add_argument("--dry-run", action="store_true", help="print only, do not write the plan")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(handler=_cmd_plan)

    p = sub.add_parser("profile", help="is training loader-bound or compute-bound, and why")
    p.add_argument("store", help="store path or fsspec URL")
    p.add_argument("--config", help="training configuration (.yaml or .toml)")
    p.add_argument("--seconds", type=float, default=20.0, help="measuring time (default 20)")
    p.add_argument("--batches", type=int, help="at most this many batches per measurement")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: the config's)")
    p.add_argument("--json", metavar="OUT", help="also write the report as JSON")
    p.set_defaults(handler=_cmd_profile)

    p = sub.add_parser("train", help="train a U-Net on a fastseg store (torchrun for DDP)")
    p.add_argument("store", help="store path or fsspec URL (from `fastseg convert`)")
    p.add_argument("--out", required=True, help="run directory (checkpoints, logs, run.json)")
    p.add_argument("--config", help="training configuration (.yaml or .toml)")
    p.add_argument("--resume", action="store_true", help="continue from RUN/checkpoints/last.pt")
    p.add_argument("--fold", type=int, help="validation fold (-1: no validation)")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int)
    p.add_argument("--max-iterations", type=int)
    p.add_argument("--time-budget", type=float, help="seconds of training")
    p.add_argument("--workers", type=int, help="loader worker processes")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="any config key, e.g. optim.optimizer=sgd (repeatable)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_cmd_train)

    p = sub.add_parser("compare", help="is method A significantly different from method B?")
    p.add_argument("a", help="metric table (CSV from `fastseg evaluate`) of method A")
    p.add_argument("b", help="metric table of method B")
    p.add_argument("--metric", default="dice", help="column to compare (default: dice)")
    p.add_argument("--by", default="label", help="compare per value of this column ('' for all)")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--alternative", choices=["two-sided", "greater", "less"], default="two-sided")
    p.add_argument("--drop-nonfinite", action="store_true", help="drop inf values (empty masks)")
    p.add_argument("--out", help="write the report as JSON")
    p.set_defaults(handler=_cmd_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # OpenMP threads that spin while idle starve the loader's worker processes (and everything
    # else) on a machine with few cores; this must be set before torch is first imported.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except FastsegError as exc:
        print(f"fastseg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fastseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
