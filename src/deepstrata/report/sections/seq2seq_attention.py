"""Where a seq2seq model looks: attention heatmaps of decoded test examples.

Problem: an exact-match score says whether a sequence model is right, not how it gets there
or why it fails. Idea: plot, for a few held-out inputs, the attention weights of every output
token (rows) over the source tokens (columns), as Bahdanau et al. 2015 did for translation;
a date model should look at the year when writing the year and at the month name when
writing the month.
"""

from __future__ import annotations

import html
import json

from deepstrata.registry import register_report_section
from deepstrata.report.html import Section, figure_html, table_html
from deepstrata.run.run import Run

EXAMPLES = "seq2seq_examples.json"


@register_report_section("seq2seq_attention")
def seq2seq_attention(run: Run) -> Section | None:
    """Decoded test examples of a seq2seq run, with attention heatmaps when the model has attention."""
    path = run.run_dir / EXAMPLES
    if not path.exists():
        return None
    examples = json.loads(path.read_text(encoding="utf-8"))
    rows = [(e["source"], e["target"], e["prediction"], "yes" if e["prediction"] == e["target"] else "no") for e in examples]
    parts = [table_html(rows, ("input", "target", "decoded (greedy)", "exact"))]
    with_attention = [e for e in examples if e.get("attention")]
    if with_attention:
        import matplotlib.pyplot as plt

        shown = with_attention[:4]
        fig, axes = plt.subplots(1, len(shown), figsize=(4.6 * len(shown), 3.6), squeeze=False)
        for ax, e in zip(axes[0], shown):
            ax.imshow(e["attention"], cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0)
            ax.set_xticks(range(len(e["source_tokens"])), [t if t != " " else "␣" for t in e["source_tokens"]], fontsize=7)
            ax.set_yticks(range(len(e["prediction_tokens"])), e["prediction_tokens"], fontsize=7)
            ax.set_title(e["source"], fontsize=9)
            ax.set_xlabel("source")
        axes[0][0].set_ylabel("output")
        parts.append(figure_html(fig, alt="attention weights of decoded test examples"))
        parts.append("<p>Rows: output tokens; columns: source characters; colour: attention weight (each row sums to 1).</p>")
    return Section("Decoded test examples and attention", "".join(parts) if parts else html.escape("no examples"), order=32)
