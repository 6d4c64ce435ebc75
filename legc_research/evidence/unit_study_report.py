"""``docs/units.md`` from the unit study's ``results.jsonl`` (:mod:`unit_study`)."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np

from keras_legc._io import atomic_write_bytes
from legc_research.evidence import unit_study as study

NAMES = {
    "digits_mlp": "digits MLP 64-96-48-10 (sklearn digits)",
    "lenet_300_100": "LeNet-300-100 (Fashion-MNIST)",
    "lenet5": "LeNet-5-style (Fashion-MNIST)",
    "ds_cnn": "DS-CNN (Fashion-MNIST)",
    "resnet8": "ResNet-8 (Fashion-MNIST)",
    "mobilenet_v1_025": "MobileNetV1-0.25 (Fashion-MNIST)",
}


def _cell(stat) -> str:
    mean, sd, n = stat
    if mean is None:
        return "-"
    return f"{100 * mean:.1f} ± {100 * sd:.1f}" + ("" if n >= 3 else f" (n={n})")


def accuracy_table(rows: list[dict], net: str) -> list[str]:
    summary = study.summarise([r for r in rows if r["net"] == net])
    crits = [c for c in study.CRITERIA if any(k[1] == c for k in summary)]
    out = ["| MACs | when | " + " | ".join(crits) + " |",
           "|---|---|" + "---:|" * len(crits)]  # fmt: skip
    for f in study.REDUCTIONS:
        for when in ("before", "after"):
            cells = []
            means = {c: summary.get((net, c, f), {}).get(when, (None, None, 0))[0] for c in crits}
            best = max((m for m in means.values() if m is not None), default=None)
            for c in crits:
                stat = summary.get((net, c, f), {}).get(when, (None, None, 0))
                text = _cell(stat)
                cells.append(f"**{text}**" if stat[0] is not None and stat[0] == best else text)
            label = "before FT" if when == "before" else "after FT"
            out.append(f"| {f:g}x fewer | {label} | " + " | ".join(cells) + " |")
    return out


def evidence_table(rows: list[dict]) -> list[str]:
    """Per net and series: units, tested, causal, never moved, Spearman vs L2 (mean over seeds)."""
    out = ["| net | series | units | tested | causal (BH q < 0.05) | never moved | max lag | "
           "Spearman ρ vs final L2 |", "|---|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for net in dict.fromkeys(r["net"] for r in rows):
        for crit, label in SERIES:
            ev = {}
            for r in rows:
                if r["net"] == net and r["criterion"] == crit and "evidence" in r:
                    ev[r["seed"]] = r["evidence"]
            if not ev:
                continue
            e = list(ev.values())
            causal = [x["causal"] for x in e]
            rho = [x["spearman_l2"] for x in e if x["spearman_l2"] is not None]
            out.append(
                f"| {net} | {label} | {e[0]['units']} | "
                f"{'/'.join(str(x['tested']) for x in e)} | "
                f"{'/'.join(str(c) for c in causal)} "
                f"({100 * np.mean(causal) / e[0]['units']:.0f}%) | "
                f"{'/'.join(str(x['static']) for x in e)} | {e[0]['max_lag']} | "
                + (f"{np.mean(rho):.2f} ({', '.join(f'{v:.2f}' for v in rho)})" if rho else "-")
                + " |"
            )
    return out


def verdict_lines(rows: list[dict]) -> list[str]:
    out = ["| net | best unit LEGC | best of L1 / BN scale / Taylor | LEGC − baseline (pp, "
           "paired by seed) | ≥ +1 pp? |", "|---|---|---|---:|---|"]  # fmt: skip
    for v in study.verdicts(rows):
        out.append(
            f"| {v['net']} | {v['legc']} | {v['baseline']} | {v['diff_pp']:+.2f} ± "
            f"{v['diff_sd_pp']:.2f} (n={v['seeds']}) | {'yes' if v['meets'] else 'no'} |"
        )
    return out


SERIES = (("legc_weight", "weight L2 norm"), ("legc_act", "mean abs. activation"))


def target_lines(rows: list[dict]) -> list[str]:
    """The unit LEGC criteria recorded against another target (``--target loss``) beside the
    study's own: causal units per seed, and test accuracy at 2x fewer MACs before fine-tuning
    against the best of :data:`~unit_study.BASELINES` (the seeds both targets have)."""
    first = study.TARGETS[0]
    others = [t for t in study.TARGETS[1:] if study.of_target(rows, t)]
    out = []
    for t in others:
        out += [f"## The unit LEGC criteria against the validation {t}", "",
                f"The same nets and seeds trained again with the recorders' target `{t}` "
                f"(`python tools/unit_study.py --target {t} --criteria legc_weight,legc_act`); "
                "the other criteria do not read the target, so the baseline is the study's own "
                "cell. *Same dense net*: the seed's dense test accuracy equal under both targets "
                "(the recorders do not change training).", "",
                f"| net | series | seeds | causal units, {first} → {t} | 2x before FT, {first} "
                f"| 2x before FT, {t} | best of L1 / BN / Taylor | same dense net |",
                "|---|---|---|---|---:|---:|---:|---|"]  # fmt: skip
        other = study.of_target(rows, t)
        main = study.of_target(rows, first)
        for net in dict.fromkeys(r["net"] for r in other):
            dense = {tg: {r["seed"]: r["acc_before"] for r in rs
                          if r["net"] == net and r["criterion"] == "dense"}
                     for tg, rs in ((first, main), (t, other))}  # fmt: skip
            for crit, label in SERIES:
                a, b = _at_2x(main, net, crit), _at_2x(other, net, crit)
                seeds = sorted(set(a) & set(b))
                if not seeds:
                    continue
                base = {c: _at_2x(main, net, c) for c in study.BASELINES}
                base = {c: v for c, v in base.items() if all(s in v for s in seeds)}
                best = max(base, key=lambda c: _mean_before(base[c], seeds), default=None)
                causal = ", ".join(f"{a[s]['evidence']['causal']} → {b[s]['evidence']['causal']}"
                                   for s in seeds)  # fmt: skip
                same = all(dense[first].get(s) == dense[t].get(s) for s in seeds)
                out.append(
                    f"| {net} | {label} | {','.join(map(str, seeds))} | {causal} "
                    f"(of {a[seeds[0]]['evidence']['units']}) | {_mean_before(a, seeds):.1f} | "
                    f"{_mean_before(b, seeds):.1f} | "
                    + (f"{_mean_before(base[best], seeds):.1f} ({best})" if best else "-")
                    + f" | {'yes' if same else 'no'} |"
                )
        out.append("")
    return out


def _at_2x(rows: list[dict], net: str, criterion: str) -> dict[int, dict]:
    """``{seed: row}`` of a criterion's finished cells at 2x fewer MACs."""
    return {r["seed"]: r for r in rows if r["net"] == net and r["criterion"] == criterion
            and r.get("reduction") == 2.0 and r.get("status") == "ok"}  # fmt: skip


def _mean_before(cells: dict[int, dict], seeds) -> float:
    """Mean test accuracy (%) before fine-tuning over ``seeds``."""
    return 100 * float(np.mean([cells[s]["acc_before"] for s in seeds]))


def write_report(results: Path, doc: Path, prose: str | None = None) -> Path:
    every = study.read_results(results)
    rows = study.of_target(every)
    nets = list(dict.fromkeys(r["net"] for r in rows))
    dense = {}
    for r in rows:
        if r["criterion"] == "dense":
            dense.setdefault(r["net"], []).append(r)
    lines = [
        "# Units: does chaos-causality per filter or neuron carry information beyond magnitude?",
        "",
        "Issue 27's study, written by `python tools/unit_study.py --report docs/units.md "
        "--force --prose docs/units-verdict.md` from `runs/unit-study/results.jsonl` ("
        + time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        + ", "
        + f"Python {platform.python_version()}). Protocol: `legc_research/evidence/unit_study.py`.",
        "",
    ]
    if prose:
        lines += [prose.strip(), ""]
    lines += ["## Verdict at 2x fewer MACs, before fine-tuning", ""] + verdict_lines(rows) + [""]
    lines += ["## How many units the test finds causal", ""] + evidence_table(rows) + [""]
    lines += target_lines(every)
    lines += ["## Test accuracy (%) per criterion, mean ± sd over seeds", ""]
    for net in nets:
        d = dense.get(net, [])
        acc = np.mean([r["acc_before"] for r in d]) if d else float("nan")
        macs = d[0]["macs"] if d else 0
        secs = np.mean([r.get("seconds_train", np.nan) for r in d]) if d else float("nan")
        lines += [
            f"### {NAMES.get(net, net)}",
            "",
            f"Dense: {100 * acc:.2f}% test accuracy (seeds {sorted(r['seed'] for r in d)}), "
            f"{macs:,} MACs, trained and recorded in {secs:.0f} s per seed.",
            "",
        ]
        lines += accuracy_table(rows, net) + [""]
    atomic_write_bytes(doc, ("\n".join(lines) + "\n").encode(), overwrite=True)
    return doc
