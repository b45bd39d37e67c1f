"""The report's Search section: what `--strategy auto` tried, judged on val, and why each candidate stopped."""
from __future__ import annotations


def search_view(config: dict) -> dict | None:
    """Rows of the search table and the rules, from config.yaml's strategy section; None for other runs."""
    strategy = config.get("strategy", {})
    table = strategy.get("search")
    if not isinstance(table, list):
        return None
    rows = [{"name": r.get("name"), "options": r.get("options", ""), "val_accuracy": r.get("val_accuracy"),
             "seconds": r.get("seconds"), "epochs": f"{r.get('epochs_done', 0)} / {r.get('epochs_planned', 0)}",
             "status": r.get("status", ""), "why": r.get("why", ""), "reasons": "; ".join(r.get("reasons") or []),
             "winner": r.get("name") == strategy.get("winner")} for r in table]
    budget = strategy.get("budget", {})
    return {"rows": rows, "winner": strategy.get("winner"), "selection": strategy.get("selection"),
            "rules": strategy.get("rules", []),
            "budget_minutes": budget.get("minutes"), "search_seconds": budget.get("search_seconds"),
            "sessions": budget.get("sessions")}
