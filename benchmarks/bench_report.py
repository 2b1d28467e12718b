"""Formatting of the benchmark's results: the Markdown table and the target checks."""
from __future__ import annotations


def _ratio(measurement, reference) -> str:
    if measurement.median is None or reference is None or reference.median is None:
        return "-"
    return f"{measurement.median / reference.median:.2f}"


def format_table(results: dict, bound_label: str, torch_label: str) -> list:
    """A Markdown table of ``{config key: [Measurement, ...]}``: ms/step, spread, ratios, loss at the end."""
    lines = ["| config | row | ms/step (median) | IQR ms | x bound | x PyTorch | loss at last step |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for key, measurements in results.items():
        by_label = {m.label: m for m in measurements}
        for m in measurements:
            if m.median is None:
                lines.append(f"| ({key}) | {m.label} | n/a ({m.note}) | | | | |")
                continue
            loss = "-" if m.last_loss is None else f"{m.last_loss:.5f}"
            lines.append(f"| ({key}) | {m.label} | {m.median * 1e3:.2f} | {m.iqr * 1e3:.2f} | "
                         f"{_ratio(m, by_label.get(bound_label))} | {_ratio(m, by_label.get(torch_label))} | {loss} |")
    return lines


def format_targets(results: dict, targets: list) -> list:
    """One line per (target, config): the measured ratio and whether it meets the target."""
    lines = []
    for row, reference, keys, limit in targets:
        for key in keys:
            if key not in results:
                continue
            by_label = {m.label: m for m in results[key]}
            mine, theirs = by_label.get(row), by_label.get(reference)
            name = f"  {row} / {reference} on ({key}) <= {limit:.2f}:"
            if mine is None or theirs is None or mine.median is None or theirs.median is None:
                missing = mine if mine is None or mine.median is None else theirs
                why = "row not run" if missing is None else missing.note
                lines.append(f"{name} n/a ({why})")
                continue
            ratio = mine.median / theirs.median
            lines.append(f"{name} {ratio:.2f}  {'met' if ratio <= limit else 'NOT MET'}")
    return lines


def has_wrong_row(results: dict) -> bool:
    """Whether any row was dropped for computing a different loss than the NumPy reference."""
    return any(m.note and m.note.startswith("WRONG") for ms in results.values() for m in ms)
