"""tlearn rank DATA [--rank-sources a,b,RUN_DIR|offline] [--rank-metric logme|leep|nce|hscore|all] [--verify-probe] [--json]"""
from __future__ import annotations

import json

from ..rank.config import RankConfig
from . import examples
from .options import add_config_arguments, add_json, config_from_args


def register(sub) -> None:
    p = sub.add_parser(
        "rank", help="which pretrained source suits DATA best, from one forward pass (LogME, LEEP, NCE, H-score)",
        description="Score candidate sources (registry backbones with weights here, timm:<name>, tlearn run "
                    "directories) on DATA's train split, best first. Features are cached, so a later `tlearn fit` "
                    "from the winner reuses them.",
        **examples("tlearn rank flowers                                   # every backbone with weights here",
                   "tlearn rank xray2 --rank-sources efficientnet_lite0,runs/xray --rank-metric all --json",
                   "tlearn rank flowers --verify-probe --out rank/        # with linear-probe val accuracy"))
    add_config_arguments(p, RankConfig)
    add_json(p, "print the ranking as JSON (a list, best first) instead of a table")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data.layout import load_splits
    from ..rank.ranking import fill_rank_features, format_table, parse_metrics, rank_sources
    from ..rank.sources import parse_sources
    from ..report.rank import check_rank_out, write_rank_outputs

    cfg = config_from_args(RankConfig, args)
    if cfg.out:
        check_rank_out(cfg.out)  # before the work, so a refused folder costs nothing
    sources, metrics = parse_sources(cfg.sources), parse_metrics(cfg.metric)
    splits = load_splits(cfg.data, cfg.val_fraction, cfg.seed)
    if not fill_rank_features(splits, sources, verify=cfg.verify, batch_size=cfg.batch_size, precision=cfg.precision,
                              device=cfg.device, cache_dir=cfg.cache_dir, num_workers=cfg.num_workers,
                              progress=cfg.progress, image_size=cfg.image_size):
        return 0  # a torchrun worker: its share of the features is in rank 0's cache, which ranks
    ranking = rank_sources(splits, sources, metrics, verify=cfg.verify, seed=cfg.seed,
                           val_fraction=cfg.val_fraction, batch_size=cfg.batch_size,
                           precision=cfg.precision, device=cfg.device, cache_dir=cfg.cache_dir,
                           num_workers=cfg.num_workers, progress=cfg.progress, image_size=cfg.image_size)
    print(json.dumps(ranking.public(), indent=2) if args.json else format_table(ranking))
    if cfg.out:
        written = write_rank_outputs(ranking, cfg.out)
        if not args.json:
            print(f"\nwritten to {', '.join(str(p) for p in written)}")
    return 0
