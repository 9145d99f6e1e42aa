"""Reading the API's summary report, printing it as a table, comparing it with the tally."""

from __future__ import annotations

import math
from typing import Any


def report_figures(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """criterion key -> figures (count, rates, sum, max, distribution label -> count)."""
    out: dict[str, dict[str, Any]] = {}
    for c in summary.get("criteria", []):
        dist = {d["label"]: int(d["count"]) for d in c.get("distribution") or []}
        out[c["key"]] = {
            "label": c.get("label", c["key"]),
            "count": int(c.get("count") or 0),
            "error_rate": c.get("error_rate"),
            "success_rate": c.get("success_rate"),
            "sum": c.get("sum"),
            "max": c.get("max"),
            "distribution": {k: v for k, v in dist.items() if v},
        }
    return out


def _fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:5.1f}%"


def _fmt_num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def print_report(setup: Any, reported: dict[str, dict[str, dict[str, Any]]]) -> None:
    print()
    header = f"{'criterion':<24} {'count':>6} {'success':>8} {'errors':>8} {'sum':>12} {'max':>9}"
    for profile_id, profile in setup.profiles.items():
        print(f"Profile: {profile.name}  (id {profile_id})")
        print("  " + header)
        for fig in reported.get(profile_id, {}).values():
            print(
                f"  {fig['label'][:24]:<24} {fig['count']:>6} {_fmt_rate(fig['success_rate']):>8}"
                f" {_fmt_rate(fig['error_rate']):>8} {_fmt_num(fig['sum']):>12}"
                f" {_fmt_num(fig['max']):>9}"
            )
            if fig["distribution"]:
                total = fig["count"] or 1
                parts = ", ".join(
                    f"{label} {n} ({100 * n / total:.0f}%)"
                    for label, n in sorted(fig["distribution"].items())
                )
                print(f"  {'':<24} distribution: {parts}")
        print()


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


def compare(setup: Any, expected: dict[str, Any], reported: dict[str, Any]) -> list[str]:
    """Every figure that differs, named; empty when the report matches the tally."""
    differences: list[str] = []
    aggregations = {
        pid: {c["key"]: c.get("aggregations", []) for c in p.criteria}
        for pid, p in setup.profiles.items()
    }
    for profile_id, profile in setup.profiles.items():
        want_criteria = expected.get(profile_id, {})
        have_criteria = reported.get(profile_id, {})
        for key, want_fig in want_criteria.items():
            want = want_fig.as_report()
            have = have_criteria.get(key)
            where = f"{profile.name} / {key}"
            if have is None:
                differences.append(f"{where}: missing from the report")
                continue
            # The API reports the figures a criterion's aggregations ask for; count always.
            chosen = {"count", *aggregations.get(profile_id, {}).get(key, [])}
            for figure in ("count", "error_rate", "success_rate", "sum", "max"):
                if figure not in chosen:
                    continue
                if not _same(want[figure], have[figure]):
                    differences.append(
                        f"{where} {figure}: report {have[figure]}, tally {want[figure]}"
                    )
            if "distribution" in chosen and want["distribution"] != have["distribution"]:
                differences.append(
                    f"{where} distribution: report {have['distribution']}, "
                    f"tally {want['distribution']}"
                )
        for key in have_criteria.keys() - want_criteria.keys():
            if have_criteria[key]["count"]:
                differences.append(f"{profile.name} / {key}: in the report, not dialled")
    return differences
