"""tlearn explain RUN IMAGE_OR_DIR ... --out DIR [--method gradcam] [--class NAME]"""
from __future__ import annotations

from ..explain.methods import DEFAULT_METHOD, METHODS
from . import examples
from .options import add_json
from .output import one_line


def register(sub) -> None:
    p = sub.add_parser("explain", help="heatmaps of where a trained run's model looks (Grad-CAM and kin)",
                       description="Class-activation heatmaps over the images, for the predicted class and any "
                                   "--class asked for, computed on exactly the run's eval crop. Writes one PNG per "
                                   "image and class, index.json and index.html into --out; prints one line per "
                                   "image (path, predicted class, probability, overlay file; tab-separated, or "
                                   "JSON with --json).",
                       **examples("tlearn explain runs/flowers photos/ --out heatmaps/       # open heatmaps/index.html",
                                  "tlearn explain runs/xray scan.png --class PNEUMONIA --method gradcam++ --out cam/"))
    p.add_argument("run", help="run directory")
    p.add_argument("images", nargs="+", help="image files or folders (searched recursively)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder for the PNGs, index.json and index.html (a new or empty folder; nothing is written "
                        "elsewhere)")
    p.add_argument("--method", default=DEFAULT_METHOD, choices=list(METHODS),
                   help="gradcam, gradcam++ (several objects of a class), hirescam (faithful to the computation), "
                        "xgradcam, layercam (finer), eigencam (no gradient, one map for all classes)")
    p.add_argument("--class", dest="classes", action="append", default=[], metavar="NAME",
                   help="also map this class (repeatable); the predicted class is always mapped")
    p.add_argument("--batch-size", type=int, default=8, help="images per forward and backward pass")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty --out that is not an earlier explain output (other files are kept)")
    add_json(p, "one JSON object per image (path, predicted, probability, overlay) instead of tab-separated lines")
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    import sys
    import time
    from pathlib import Path

    from ..errors import TlearnError

    from ..data.layout import list_images
    from ..device import pick_device
    from ..explain.cam import require_grad_cam
    from ..explain.explain import explain_files
    from ..explain.output import ExplainWriter, prepare_out
    from ..runs.run import Run

    require_grad_cam()  # before any work: says how to install it
    start = time.perf_counter()
    run_ = Run(args.run)
    unknown = [c for c in args.classes if c not in run_.classes]
    if unknown:
        raise TlearnError(f"--class {unknown[0]!r} is not one of the run's classes: {', '.join(run_.classes)}.")
    paths = [p for item in args.images for p in list_images(item)]
    out = Path(args.out)
    prepare_out(out, args.overwrite)
    model = run_.model
    from ..explain.targets import cam_target

    target = cam_target(model.backbone, model.architecture)
    writer = ExplainWriter(out, str(run_.path), run_.classes, args.method, target.name,
                           run_.data_config.input_size)
    skipped = []
    for item in explain_files(model, run_.data_config, paths, method=args.method,
                              classes=[run_.classes.index(c) for c in args.classes],
                              device=str(pick_device(args.device)), batch_size=args.batch_size, skipped=skipped):
        entry = writer.add(item)
        overlay = out / entry["maps"][0]["file"]
        if args.json:
            print(json.dumps({"path": entry["path"], "predicted": entry["predicted"],
                              "probability": entry["probability"], "overlay": str(overlay)}))
        else:
            print(f"{one_line(entry['path'])}\t{one_line(entry['predicted'])}\t{entry['probability']:.4f}\t"
                  f"{one_line(overlay)}")
    page = writer.finish(skipped, time.perf_counter() - start)
    sys.stdout.flush()
    for s in skipped:
        print(f"skipped {one_line(s.path)}: {one_line(s.reason)}", file=sys.stderr)
    print(f"index: {page}", file=sys.stderr)
    return 0 if writer.images else 1
