"""--strategy auto: facts -> rules -> portfolio -> the probe -> successive halving of fine-tunes -> the winner.

Everything is judged on val; the search's copy of the data has no test split, so nothing here can look at
test. Each fine-tune keeps its latest epoch within one standard error of its best, and the winner is the first
candidate in portfolio order within one standard error of the best (tlearn.train.selection); it comes back as an ordinary FitResult, and tlearn.fit
evaluates it on val and test and writes the run directory as for any strategy.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path

from ..backbones.registry import get_spec
from ..data.layout import SkippedFile
from ..errors import TlearnError
from ..files import atomic_write_text
from ..runs.source import resolve_info
from ..strategies import FitContext, FitResult
from ..train.distributed import dist_env
from ..train.selection import standard_error, within_one_se
from . import halving
from .budget import MEASURED_MARGIN, SAFETY, Clock, CostModel, check_budget
from .facts import DataFacts, measure_facts
from .portfolio import Candidate, default_portfolio
from .rules import apply_rules
from .runner import (EpochControl, fresh_context, kept_epoch_row, load_candidate_model, run_probe, train_finetune,
                     write_candidate_files)
from .state import SearchState, search_fingerprint

log = logging.getLogger("tlearn")

# options that choose a recipe: the search sets them itself (--image-size is allowed: every candidate uses it)
RECIPE_OPTIONS = ("epochs", "head_epochs", "lr", "lr_ratio", "optimizer", "augment", "train_size", "freeze_bn",
                  "label_smoothing", "l2_sp", "ema", "patience", "max_seconds")


def native_input_size(info) -> int:
    """The backbone's own input size (info's may be the user's --image-size)."""
    try:
        return get_spec(info.architecture).data_config.input_size
    except TlearnError:
        return info.data_config.input_size


def check_options(cfg) -> None:
    given = [f"--{k.replace('_', '-')}" for k in RECIPE_OPTIONS if getattr(cfg, k, None) is not None]
    if given:
        them = "it" if len(given) == 1 else "them"
        raise TlearnError(f"--strategy auto chooses {', '.join(given)} itself; drop {them}, or name a strategy "
                          "(e.g. --strategy finetune) to set them by hand.")
    if dist_env().enabled:
        raise TlearnError("--strategy auto runs in one process; start it without torchrun.")


class AutoSearch:
    """The strategy object for `--strategy auto` (see the module docstring)."""

    name = "auto"

    def __init__(self, cfg):
        self.cfg = cfg

    def fit(self, ctx: FitContext) -> FitResult:
        return Search(ctx).run()


def _record(c: Candidate) -> dict:
    return {**c.to_dict(), "options": c.describe(), "status": "pending", "why": "",
            "epochs_planned": c.total_epochs, "epochs_done": 0, "val_accuracy": None, "val_loss": None,
            "val_balanced_accuracy": None, "best_epoch": None, "seconds": 0.0, "history": [], "details": {},
            "skipped": [], "train_metrics": None}


def _rank_key(rec: dict) -> tuple:
    return (rec["val_accuracy"], -(rec["val_loss"] if rec["val_loss"] is not None else float("inf")))


def choose_winner(scored: list[dict], n_val: int) -> tuple[dict, str]:
    """The one-standard-error rule over candidates: the first in portfolio order (the probe, then the recipes the
    rules favour) whose val accuracy is within one standard error of the best; and the sentence that says so."""
    best = max(scored, key=_rank_key)
    se = standard_error(best["val_accuracy"], n_val)
    winner = next(r for r in scored if within_one_se(r["val_accuracy"], best["val_accuracy"], n_val))
    if winner is best:
        return winner, f"{best['name']} has the best val accuracy ({best['val_accuracy']:.4f} on {n_val} images)"
    return winner, (f"{winner['name']} ({winner['val_accuracy']:.4f}) is the first candidate in portfolio order within "
                    f"one standard error ({se:.4f}, {n_val} val images) of the best, {best['name']} "
                    f"({best['val_accuracy']:.4f})")


class Search:
    def __init__(self, ctx: FitContext):
        cfg = ctx.config
        check_options(cfg)
        try:
            self.total = check_budget(getattr(cfg, "budget_minutes", None))
        except ValueError as exc:
            raise TlearnError(str(exc)) from None
        self.cfg = cfg
        self.n_test = len(ctx.splits.test)  # a count, for the time the final evaluation needs; never the images
        self.ctx = dataclasses.replace(ctx, splits=dataclasses.replace(ctx.splits, test=[]))
        self.info = ctx.backbone_info
        self.folder = Path(ctx.out) / "search"
        fingerprint = search_fingerprint(cfg.to_dict(), ctx.splits, ctx.backbone_info)
        self.state = SearchState.open(self.folder / "search.json", fingerprint)
        self.clock = Clock(self.total, self.state.data["spent_seconds"])
        self.state.clock = self.clock
        self.state.data["budget_seconds"] = self.total
        self.state.data["sessions"] += 1

    # ---- records -------------------------------------------------------------------------------------------
    @property
    def records(self) -> list[dict]:
        return self.state.data["candidates"]

    def rec(self, name: str) -> dict:
        return self.state.candidate(name)

    def candidate(self, rec: dict) -> Candidate:
        return Candidate.from_dict(rec)

    def _info(self, rec: dict):
        return resolve_info(self.info, image_size=rec["settings"].get("image_size"))

    def _sizes(self, rec: dict) -> tuple[int, int]:
        dc = self._info(rec).data_config
        return dc.training_size, dc.input_size

    def _context(self, rec: dict) -> FitContext:
        out = self.folder / rec["name"]
        config = self.candidate(rec).config(self.cfg, str(out))
        write_candidate_files(out, config.to_dict(), rec["options"])
        return fresh_context(self.ctx, config, self._info(rec), out)

    def _save_result(self, rec: dict) -> None:
        out = self.folder / rec["name"]
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "result.json", json.dumps(rec, indent=1, default=float) + "\n")
        self.state.save()

    def _set_val(self, rec: dict) -> None:
        best = kept_epoch_row(rec["history"], len(self.ctx.splits.val))
        if best is not None:
            rec.update(val_accuracy=best["val_accuracy"], val_loss=best.get("val_loss"), best_epoch=best["epoch"],
                       val_balanced_accuracy=best.get("val_balanced_accuracy"))

    # ---- steps ---------------------------------------------------------------------------------------------
    def run(self) -> FitResult:
        if self.state.is_new:
            self._start()
        else:
            log.info("auto: continuing the search in %s (%.0fs of %.0fs spent before)", self.folder,
                     self.clock.spent_before, self.total)
        facts = DataFacts.from_dict(self.state.data["facts"])
        self.costs = CostModel(self.ctx.backbone, self.info.feature_dim, self.info.architecture,
                               facts.decode_seconds_per_image, batch=self.cfg.train_batch_size)
        for rec in self.records:
            self._calibrate(rec)
        largest = max(self._sizes(r)[1] for r in self.records)
        self.clock.reserve = SAFETY * self.costs.final_seconds(largest, len(self.ctx.splits.val) + self.n_test)
        self.state.data["reserve_seconds"] = round(self.clock.reserve, 1)
        self._probes()
        self._plan()
        self._halving()
        return self._result()

    def _start(self) -> None:
        splits = self.ctx.splits
        facts = measure_facts(splits.train, splits.val, splits.classes, self.ctx.backbone, self.info.data_config,
                              seed=self.cfg.seed)
        user_size = getattr(self.cfg, "image_size", None)
        cands, rules = apply_rules(default_portfolio(), facts, native_input_size(self.info),
                                   user_image_size=user_size,
                                   user_balancing=bool(self.cfg.class_weights or self.cfg.sampler))
        for r in rules:
            log.info("auto rule %s: %s (%s)%s", r.name, "fired" if r.fired else "not fired", r.fact,
                     f" -> {r.effect}" if r.fired else "")
        self.state.data.update(facts=facts.to_dict(), rules=[r.to_dict() for r in rules],
                               candidates=[_record(c) for c in cands])
        log.info("auto: %d candidates in order: %s; budget %.1f min", len(cands), ", ".join(c.name for c in cands),
                 self.total / 60)
        self.state.save()

    def _probes(self) -> None:
        probes = [r for r in self.records if r["strategy"] == "linear-probe"]
        first = probes[0] if probes else None
        for rec in probes:
            if rec["status"] in ("finished", "not run"):
                continue
            if rec is not first:
                n = len(self.ctx.splits.train) + len(self.ctx.splits.val)
                fit_seconds = max(first["seconds"] - first["details"].get("train_feature_seconds", 0.0), 0.0)
                need = self.costs.probe_seconds(self._sizes(rec)[1], n, 0, fit_seconds)
                if not self.clock.fits(need):
                    rec.update(status="not run", why=f"budget: needs ~{need:.0f}s, {self.clock.left():.0f}s left")
                    self.state.save()
                    continue
            log.info("auto: %s (%s)", rec["name"], rec["options"])
            rec["status"] = "running"
            self.state.save()
            t0 = time.perf_counter()
            rec.update(run_probe(self._context(rec)))
            rec.update(status="finished", why="completed", epochs_done=1,
                       seconds=round(time.perf_counter() - t0, 2))
            self._set_val(rec)
            log.info("auto: %s val accuracy %.4f (%.1fs)", rec["name"], rec["val_accuracy"], rec["seconds"])
            self._save_result(rec)

    def _probe_for(self, rec: dict) -> dict | None:
        """A finished probe whose head is the one this candidate's linear-probe warm-up would fit."""
        if rec["strategy"] != "finetune" or rec["settings"].get("head_epochs"):
            return None
        for p in self.records:
            if (p["strategy"] == "linear-probe" and p["status"] == "finished"
                    and p["settings"].get("image_size") == rec["settings"].get("image_size")
                    and p["settings"].get("class_weights") == rec["settings"].get("class_weights")):
                return p
        return None

    @staticmethod
    def _full_epochs(rec: dict) -> list[dict]:
        if rec["strategy"] == "linear-probe":
            return []
        return [r for r in rec["history"] if r.get("phase") != "head" and isinstance(r.get("seconds"), (int, float))]

    def _calibrate(self, rec: dict) -> None:
        """Measured / benchmarked seconds of a candidate's first full epoch: scales the other estimates."""
        rows = self._full_epochs(rec)
        if rows:
            self.costs.calibration.append(rows[0]["seconds"] / max(self._epoch_estimate(rec, calibrated=False), 1e-9))

    def _epoch_estimate(self, rec: dict, calibrated: bool = True) -> float:
        rows = self._full_epochs(rec)
        if rows and calibrated:
            return max(r["seconds"] for r in rows)
        train_size, predict_size = self._sizes(rec)
        return self.costs.epoch_seconds(train_size, predict_size, len(self.ctx.splits.train),
                                        len(self.ctx.splits.val), calibrated=calibrated)

    def _start_estimate(self, rec: dict, decoded: set) -> float:
        """Decoding train and val at a size not yet decoded, and fitting a probe head that no probe supplies."""
        seconds = 0.0
        if self._sizes(rec)[0] not in decoded:
            seconds += self.costs.decode_seconds(len(self.ctx.splits.train) + len(self.ctx.splits.val))
        if rec["strategy"] == "finetune" and not rec["settings"].get("head_epochs") and self._probe_for(rec) is None:
            probe = next((p for p in self.records if p["strategy"] == "linear-probe" and p["seconds"]), None)
            seconds += probe["seconds"] if probe else 0.0
        return seconds

    def _costing(self, names: list[str], scale: float) -> list[halving.Costing]:
        decoded: set = set()
        items = []
        for name in names:
            rec = self.rec(name)
            c = self.candidate(rec)
            epochs = halving.scaled_epochs(int(c.settings.get("epochs") or 1), scale)
            items.append(halving.Costing(name, epochs + c.head_epochs, c.head_epochs, self._epoch_estimate(rec),
                                         self._start_estimate(rec, decoded)))
            decoded.add(self._sizes(rec)[0])
        return items

    def _plan(self) -> None:
        if self.state.data["plan"] is not None:
            return
        names = [r["name"] for r in self.records if r["strategy"] != "linear-probe"]
        available = self.clock.left() / SAFETY
        chosen, scale, left_out = halving.choose(self._costing, names, available)
        for name, why in left_out.items():
            self.rec(name).update(status="not run", why=why)
        rungs = halving.rung_count(len(chosen))
        targets = {}
        for name in chosen:
            rec = self.rec(name)
            if scale != 1.0:
                before = int(rec["settings"]["epochs"])
                rec["settings"]["epochs"] = halving.scaled_epochs(before, scale)
                rec["reasons"].append(f"epochs {before} -> {rec['settings']['epochs']}: " + (
                    "the budget allows longer" if scale > 1 else "shortened to fit the budget"))
                c = self.candidate(rec)
                rec.update(options=c.describe(), epochs_planned=c.total_epochs)
            c = self.candidate(rec)
            targets[name] = halving.rung_targets(c.total_epochs, c.head_epochs, rungs)
        self.state.data["plan"] = {"candidates": chosen, "scale": scale, "rungs": rungs, "rung": 0,
                                   "alive": list(chosen), "targets": targets,
                                   "estimated_seconds": round(halving.halving_cost(self._costing(chosen, 1.0)), 1),
                                   "available_seconds": round(available * SAFETY, 1)}
        log.info("auto plan: %s over %d rung(s)%s; %.0fs left before the final evaluation",
                 ", ".join(chosen) or "no fine-tuning (the probe is the result)", rungs,
                 f", schedules x{scale:.2g}" if scale != 1.0 else "", self.clock.left())
        self.state.save()

    def _halving(self) -> None:
        plan = self.state.data["plan"]
        while plan["rung"] < plan["rungs"]:
            k = plan["rung"]
            for name in list(plan["alive"]):
                rec = self.rec(name)
                if rec["status"] in ("stopped", "finished", "not run"):
                    continue
                if rec["epochs_done"] < plan["targets"][name][k]:
                    self._train(rec, plan["targets"][name][k], k)
            alive = [n for n in plan["alive"] if self.rec(n)["status"] not in ("stopped", "not run")]
            if k == plan["rungs"] - 1 or not alive:
                plan["alive"] = alive
                plan["rung"] = plan["rungs"]
                self.state.save()
                break
            plan["alive"] = self._survivors(alive, k)
            plan["rung"] = k + 1
            self.state.save()

    def _survivors(self, alive: list[str], k: int) -> list[str]:
        """The better half by val; fewer when the next rungs would not fit the time left."""
        ranked = sorted(alive, key=lambda n: _rank_key(self.rec(n)), reverse=True)
        keep = halving.keep_count(len(ranked))
        plan = self.state.data["plan"]

        def rest_cost(names: list[str]) -> float:
            cost = 0.0
            for n in names:
                rec = self.rec(n)
                cost += (plan["targets"][n][-1] - rec["epochs_done"]) * self._epoch_estimate(rec)
            return cost

        by_budget = set()
        while keep > 1 and not self.clock.fits(rest_cost(ranked[:keep])):
            keep -= 1
            by_budget.add(ranked[keep])
        weakest = self.rec(ranked[keep - 1])
        for name in ranked[keep:]:
            rec = self.rec(name)
            why = (f"stopped at rung {k + 1}: the time left fits fewer survivors" if name in by_budget else
                   f"stopped at rung {k + 1}: val {rec['val_accuracy']:.4f} below {weakest['val_accuracy']:.4f} "
                   f"({weakest['name']})")
            if name not in by_budget and rec["val_accuracy"] == weakest["val_accuracy"]:
                why = (f"stopped at rung {k + 1}: val {rec['val_accuracy']:.4f} tied with {weakest['name']}, "
                       "higher val loss")
            rec.update(status="stopped", why=why)
            log.info("auto: %s %s", name, why)
        return ranked[:keep]

    def _train(self, rec: dict, target: int, k: int) -> None:
        first = rec["epochs_done"] == 0
        decoded = {self._sizes(r)[0] for r in self.records if r["strategy"] == "finetune" and r["epochs_done"]}
        need = self._epoch_estimate(rec) + (self._start_estimate(rec, decoded) if first else 0.0)
        if not self.clock.fits(need):
            rec.update(status="not run" if first else "stopped",
                       why=f"budget: the next epoch needs ~{need:.0f}s, {max(self.clock.left(), 0):.0f}s left "
                           f"(after {rec['epochs_done']} of {rec['epochs_planned']} epochs)")
            log.info("auto: %s %s", rec["name"], rec["why"])
            self._save_result(rec)
            return
        log.info("auto: %s rung %d: epochs %d..%d of %d (%s)", rec["name"], k + 1, rec["epochs_done"] + 1, target,
                 rec["epochs_planned"], rec["options"])
        rec["status"] = "running"
        ctx = self._context(rec)
        head_from = self._probe_for(rec) if first else None
        base_seconds, t0 = rec["seconds"], time.perf_counter()

        def decide(row: dict) -> str | None:
            if row["epoch"] > (rec["history"][-1]["epoch"] if rec["history"] else 0):
                rec["history"].append(row)
            rec.update(epochs_done=row["epoch"], seconds=round(base_seconds + time.perf_counter() - t0, 2))
            self._set_val(rec)
            if row.get("phase") != "head" and len(self._full_epochs(rec)) == 1:
                self._calibrate(rec)
            self.state.save()
            if row["epoch"] >= target:
                return "rung"
            if not self.clock.fits(self._epoch_estimate(rec), MEASURED_MARGIN):
                return "budget"
            return None

        control = EpochControl(decide)
        result, details, skipped = train_finetune(ctx, control, self.folder / head_from["name"] if head_from else None,
                                                  rec["details"])
        rec.update(history=result.history, details=details, epochs_done=len(result.history),
                   seconds=round(base_seconds + time.perf_counter() - t0, 2),
                   skipped=rec["skipped"] + [s.to_dict() for s in list(skipped) + list(result.skipped)
                                             if s.to_dict() not in rec["skipped"]])
        self._set_val(rec)
        if rec["epochs_done"] >= rec["epochs_planned"]:
            rec.update(status="finished", why="completed its schedule")
        elif control.reason == "budget":
            rec.update(status="stopped", why=f"budget: stopped after epoch {rec['epochs_done']} of "
                                               f"{rec['epochs_planned']}")
        else:
            rec.update(status="paused", why=f"reached rung {k + 1} at epoch {rec['epochs_done']}")
        log.info("auto: %s val accuracy %.4f after %d epoch(s) (%.1fs); %s", rec["name"], rec["val_accuracy"] or 0,
                 rec["epochs_done"], rec["seconds"], rec["why"])
        self._save_result(rec)

    # ---- result --------------------------------------------------------------------------------------------
    def search_table(self) -> list[dict]:
        keys = ("name", "options", "status", "val_accuracy", "val_balanced_accuracy", "val_loss", "best_epoch",
                "epochs_done", "epochs_planned", "seconds", "why", "reasons")
        return [{k: r[k] for k in keys} for r in self.records]

    def _prune(self) -> None:
        """Once the search is over, each candidate keeps its best weights; the epoch checkpoints (weights and
        optimizer state, only needed to continue training) go."""
        for rec in self.records:
            folder = self.folder / rec["name"] / "checkpoints"
            for epoch_dir in folder.glob("epoch-*"):
                shutil.rmtree(epoch_dir, ignore_errors=True)
            (folder / "last.json").unlink(missing_ok=True)

    def _result(self) -> FitResult:
        scored = [r for r in self.records if r["val_accuracy"] is not None]
        if not scored:
            raise TlearnError("--strategy auto: no candidate finished, not even the linear probe; raise "
                              "--budget-minutes.")
        winner, selection = choose_winner(scored, len(self.ctx.splits.val))
        log.info("auto: %s", selection)
        for r in self.records:  # paused: kept at its rung when the halving ended without it (budget)
            if r["status"] in ("paused", "running", "pending"):
                r.update(status="stopped", why=r["why"] or "the search ended")
        self._prune()
        info = self._info(winner)
        model = load_candidate_model(self.folder / winner["name"], winner, info, len(self.ctx.splits.classes))
        out = self.folder / winner["name"]
        config = self.candidate(winner).config(self.cfg, str(out)).to_dict()
        config.pop("out", None)
        self.state.data["winner"] = winner["name"]
        self.state.save()
        for r in self.records:
            log.info("auto search: %-22s %-8s val %s  %6.1fs  %d/%d epochs  %s", r["name"], r["status"],
                     f"{r['val_accuracy']:.4f}" if r["val_accuracy"] is not None else "  –   ", r["seconds"],
                     r["epochs_done"], r["epochs_planned"], r["why"])
        log.info("auto: winner %s, val accuracy %.4f (%s); search %.0fs of a %.0fs budget", winner["name"],
                 winner["val_accuracy"], winner["options"], self.clock.spent(), self.total)
        details = {
            "winner": winner["name"], "winner_options": winner["options"], "winner_fit": config,
            "winner_details": winner["details"],
            "budget": {"minutes": self.total / 60, "search_seconds": round(self.clock.spent(), 1),
                       "reserve_seconds": round(self.clock.reserve, 1), "sessions": self.state.data["sessions"]},
            "facts": self.state.data["facts"], "rules": self.state.data["rules"],
            "plan": {k: v for k, v in self.state.data["plan"].items() if k != "targets"},
            "selection": selection,
            "search": self.search_table(),
        }
        if winner["best_epoch"] is not None and winner["strategy"] != "linear-probe":
            details["best_epoch"] = winner["best_epoch"]
        skipped = [SkippedFile(s["path"], s["reason"]) for s in winner["skipped"]]
        details = json.loads(json.dumps(details, default=float))  # plain numbers for config.yaml
        return FitResult(model=model, history=winner["history"], skipped=skipped, details=details,
                         train_metrics=winner["train_metrics"], backbone_info=info)
