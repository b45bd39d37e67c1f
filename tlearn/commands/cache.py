"""tlearn cache: what the caches hold (size, entries, oldest), and clearing them."""
from __future__ import annotations

import argparse
import json
import time

from ..constants import CACHE_DIR_HELP
from . import examples


def gigabytes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a size in GB of at least 0 (e.g. 5 or 0.5), got {text!r}")
    return value


def register(sub) -> None:
    from ..caches import KIND_HELP

    p = sub.add_parser("cache", help="show what the caches hold; clear them or cap their size",
                       description="Show the cache folder (--cache-dir, else TLEARN_CACHE, else ~/.cache/tlearn): "
                                   "size, entries and oldest entries of each kind ("
                                   + "; ".join(f"{k}: {v}" for k, v in KIND_HELP.items())
                                   + "). Only files tlearn wrote are removed; anything else is listed and left "
                                     "alone. Clear when no other tlearn command is running.",
                       **examples("tlearn cache                     # what is there, per kind",
                                  "tlearn cache --clear decoded     # remove the decoded images",
                                  "tlearn cache --clear            # remove every cache entry",
                                  "tlearn cache --max-size 5        # remove least recently used entries down to 5 GB",
                                  "tlearn cache --max-size 5 --dry-run --json"))
    p.add_argument("--cache-dir", default=None, help=CACHE_DIR_HELP)
    p.add_argument("--clear", nargs="?", const="all", default=None, metavar="KIND",
                   choices=["all", *KIND_HELP],
                   help=f"remove every entry, or those of one kind ({', '.join(KIND_HELP)})")
    p.add_argument("--max-size", type=gigabytes, default=None, metavar="GB",
                   help="remove the least recently used entries until the caches hold at most GB (10^9 bytes)")
    p.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _ago(t: float) -> str:
    days = (time.time() - t) / 86400
    return f"{days:.0f} d ago" if days >= 1 else f"{days * 24:.1f} h ago"


def run(args) -> int:
    from ..caches import GB, LAYOUTS, remove, scan, to_clear, to_shrink
    from ..errors import TlearnError

    if args.clear and args.max_size is not None:
        raise TlearnError("use --clear or --max-size, not both (--clear KIND empties a kind; --max-size caps all).")
    state = scan(args.cache_dir)
    chosen = []
    if args.clear:
        chosen = to_clear(state, None if args.clear == "all" else args.clear)
    elif args.max_size is not None:
        chosen = to_shrink(state, args.max_size * GB)
    removed = chosen if args.dry_run else remove(chosen, state.root)
    after = scan(state.root) if removed and not args.dry_run else state
    out = after.to_dict()
    if args.clear or args.max_size is not None:
        out["removed"] = [e.to_dict() for e in removed]
        out["freed_bytes"] = sum(e.bytes for e in removed)
        out["dry_run"] = args.dry_run
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"cache folder: {state.root}" + ("" if out["exists"] else " (does not exist yet)"))
    for kind in LAYOUTS:
        k = out["kinds"][kind]
        busy = f", {k['in_progress']} partial" if k["in_progress"] else ""
        print(f"  {kind:<9} {_size(k['bytes']):>9}  {k['entries']:>5} entr{'y' if k['entries'] == 1 else 'ies'}{busy}")
        for e in sorted(after.of_kind(kind), key=lambda e: e.last_used)[:3]:
            print(f"      oldest: {e.name}  {_size(e.bytes)}, last used {_ago(e.last_used)}")
    print(f"  {'total':<9} {_size(out['bytes']):>9}")
    if after.unknown:
        print(f"not written by tlearn, left alone ({_size(out['unknown_bytes'])}):")
        for u in after.unknown[:10]:
            print(f"  {u.path}  ({u.why})")
        if len(after.unknown) > 10:
            print(f"  ... and {len(after.unknown) - 10} more (--json lists them all)")
    if "removed" in out:
        verb = "would remove" if args.dry_run else "removed"
        kept = [e for e in state.entries if e.in_progress and e not in removed]
        print(f"{verb} {len(removed)} entr{'y' if len(removed) == 1 else 'ies'}, {_size(out['freed_bytes'])}"
              + (f"; kept {len(kept)} partial write(s) younger than an hour (a running tlearn may own them)"
                 if kept and args.clear else ""))
    return 0
