"""The run report: RUN/report/index.md with counts, times, a margin histogram and sample pairs."""

from __future__ import annotations

import io

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from mining.embedding_store import read_parquet
from mining.inputs import matching_paths
from pipelines.counts import format_table
from pipelines.stage_dir import MARKER, STATS, read_json, stage_path

STAGES = ("sentences", "embeddings", "indexes")


def _stats(directory: str) -> dict:
    path = FileSystems.join(directory, STATS)
    return read_json(path) if FileSystems.exists(path) else {}


def _write(path: str, data: bytes) -> None:
    """Write a file on any of Beam's file systems, as is (no compression by its suffix)."""
    with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as out:
        out.write(data)


def histogram_png(stats: dict, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = stats["score_histogram"]
    edges, counts = hist["edges"], hist["counts"]
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    ax.bar(
        edges[:-1],
        counts,
        width=[b - a for a, b in zip(edges, edges[1:], strict=False)],
        align="edge",
        color="#4477aa",
        edgecolor="white",
    )
    ax.axvline(
        stats["threshold"],
        color="#cc3311",
        linestyle="--",
        label=f"threshold {stats['threshold']:.3f}",
    )
    ax.set_xlabel("margin score")
    ax.set_ylabel("candidate pairs")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png")
    plt.close(fig)
    _write(path, png.getvalue())


def _pair_rows(rows: list[dict]) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")[:160]

    lines = ["| score | source | target |", "|---:|---|---|"]
    lines += [f"| {r['score']:.3f} | {cell(r['src_text'])} | {cell(r['tgt_text'])} |" for r in rows]
    return lines


def best_and_worst(bitext_dir: str, size: int) -> tuple[list[dict], list[dict]]:
    """The best pairs (from the first part) and the worst kept (from the last, worst first
    reversed): the parts are score ranges, best first, so no other part is read."""
    pattern = FileSystems.join(bitext_dir, "part-*.parquet")
    parts = matching_paths(pattern)
    if not parts:
        return [], []
    first = read_parquet(parts[0]).slice(0, size).to_pylist()
    last = read_parquet(parts[-1])
    return first, last.slice(max(last.num_rows - size, 0)).to_pylist()[::-1]


def mined_pairs(run_dir: str) -> list[tuple[str, str]]:
    """The pairs whose bitext the run holds complete, in name order."""
    markers = matching_paths(FileSystems.join(run_dir, "bitext", "*", MARKER))
    names = [marker.rstrip("/").split("/")[-2] for marker in markers]
    return [tuple(name.split("-", 1)) for name in names]


def write_report(run_dir: str, pairs: list[tuple[str, str]], sample: int = 10) -> str:
    """Write RUN/report/index.md and a scores-SRC-TGT.png per pair; returns the Markdown path.
    `pairs`: those just asked for; the other pairs mined in the run before follow them, so the
    report covers the run however its pairs were mined (`ccmine run`, or `ccmine mine` one pair
    at a time)."""
    pairs = [*pairs, *(pair for pair in mined_pairs(run_dir) if pair not in pairs)]
    out = FileSystems.join(run_dir, "report")
    names = [f"{src}-{tgt}" for src, tgt in pairs]
    stage_stats = {stage: _stats(stage_path(run_dir, stage)) for stage in STAGES}
    mined = {name: _stats(FileSystems.join(run_dir, "bitext", name)) for name in names}
    kept = stage_stats["sentences"].get("sentences_kept", {})
    lines = [f"# ccmine run report: {', '.join(names)}", "", f"Run directory: `{run_dir}`", ""]
    lines += _pairs_table(pairs, kept, mined)
    lines += ["## Time per stage", "", "| stage | seconds |", "|---|---:|"]
    for stage in STAGES:
        seconds = stage_stats[stage].get("seconds")
        lines.append(f"| {stage} | {'-' if seconds is None else f'{seconds:.1f}'} |")
    lines += ["", "## Counts", ""]
    for stage in STAGES[:2]:
        stats = {k: v for k, v in stage_stats[stage].items() if isinstance(v, (int, dict))}
        lines += ["```", format_table(stats, stage), "```", ""]
    for lang, meta in stage_stats["indexes"].get("indexes", {}).items():
        lines.append(f"- index `{lang}`: {meta['count']} vectors, `{meta['factory']}`")
    lines.append("")
    for src, tgt in pairs:
        pair = f"{src}-{tgt}"
        if not kept.get(src) and not mined[pair]:
            lines += [f"## {pair}", "", f"No {src} sentences in the input: not mined.", ""]
        else:
            lines += _pair_section(run_dir, pair, mined[pair], out, sample)
    path = FileSystems.join(out, "index.md")
    _write(path, ("\n".join(lines) + "\n").encode())
    return path


def _pairs_table(pairs: list[tuple[str, str]], kept: dict, mined: dict) -> list[str]:
    """One row per pair: its sentences, candidates, pairs kept, threshold and mining time
    (`mined`: each pair's mine stats, {} before it is mined)."""
    lines = ["## Pairs", ""]
    lines += [
        "| pair | source sentences | target sentences | candidates | kept | threshold | seconds |"
    ]
    lines += ["|---|---:|---:|---:|---:|---:|---:|"]
    for src, tgt in pairs:
        stats = mined[f"{src}-{tgt}"]
        if not stats and not kept.get(src):
            lines.append(f"| {src}-{tgt} | 0 | | | not mined | | |")
        elif not stats:
            lines.append(f"| {src}-{tgt} | {kept[src]:,} | | | no bitext yet | | |")
        else:
            counts = ("src_sentences", "tgt_sentences", "candidates", "kept")
            cells = [f"{stats[key]:,}" for key in counts]
            cells += [str(stats["threshold"]), f"{stats['seconds']:.1f}"]
            lines.append(f"| {src}-{tgt} | " + " | ".join(cells) + " |")
    if any(stats.get("mined_with") for stats in mined.values() if stats):
        lines += ["", "Pairs mined in the same Beam jobs show the same jobs' seconds."]
    return [*lines, ""]


def _pair_section(run_dir: str, pair: str, mine_stats: dict, out: str, sample: int) -> list[str]:
    """A mined pair's counts, margin histogram (written to OUT/scores-PAIR.png) and samples."""
    bitext_dir = FileSystems.join(run_dir, "bitext", pair)
    lines = [f"## {pair}", ""]
    if not mine_stats:
        return [*lines, "No bitext yet.", ""]
    lines += [
        "```",
        format_table(
            {
                "src_sentences": mine_stats["src_sentences"],
                "tgt_sentences": mine_stats["tgt_sentences"],
                "candidates": mine_stats["candidates"],
                "kept": mine_stats["kept"],
                "dropped": mine_stats["dropped"],
            },
            f"mine {pair}",
        ),
        "```",
        "",
    ]
    png = f"scores-{pair}.png"
    histogram_png(mine_stats, FileSystems.join(out, png), f"{pair} margin scores (all candidates)")
    best, worst = best_and_worst(bitext_dir, sample)
    lines += ["### Margin scores", "", f"![{pair} margin score histogram]({png})", ""]
    lines += ["### Highest-scoring pairs", "", *_pair_rows(best), ""]
    lines += ["### Lowest-scoring pairs kept", "", *_pair_rows(worst), ""]
    lines += [
        "### Just below the threshold (dropped)",
        "",
        *_pair_rows(mine_stats.get("below_threshold_sample", [])),
        "",
    ]
    lines.append(f"Bitext: `{bitext_dir}/part-*.parquet`, {mine_stats['kept']} pairs.")
    return [*lines, ""]
