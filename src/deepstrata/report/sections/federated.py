"""How a federated run was trained: clients, split, rounds, the options used, and the clients that dropped out.

Problem: a federated model's metrics mean little without the setting that produced them: how
many clients, how skewed their data, how much local work per round, which clients never
answered; those live in run.json's `strategy` entry, where nobody reads them.
Idea: one table from that entry, a sentence per option in effect (FedProx, secure aggregation,
DP-FedAvg with its epsilon) and the list of dropped clients; the learning curves already plot
each round's `federated/clients` and `federated/client_drift`.
"""

from __future__ import annotations

from deepstrata.registry import register_report_section
from deepstrata.report.html import Section, table_html
from deepstrata.run.run import Run


@register_report_section("federated")
def federated(run: Run) -> Section | None:
    """The clients, split, rounds and options of a fedavg run, and the clients dropped after their deadline."""
    record = (run.info or {}).get("strategy") or {}
    if record.get("name") != "fedavg":
        return None
    stats = record.get("split_stats") or {}
    split = record.get("split") or {}
    params = ", ".join(f"{k}={v}" for k, v in split.items() if k != "name")
    batch = ((run.config or {}).get("data") or {}).get("batch_size")
    rows = [
        ("mode", "clients as torchrun ranks (rank 0 serves)" if record.get("mode") == "ranks" else "simulated clients, one process"),
        ("clients (K)", record.get("clients")),
        ("fraction per round (C)", record.get("fraction")),
        ("local epochs (E)", record.get("local_epochs")),
        ("local batch size (B)", batch),
        ("rounds", record.get("rounds")),
        ("split", f"{split.get('name')} ({params})" if params else split.get("name")),
        ("examples per client", f"{stats.get('size_min')} to {stats.get('size_max')} (mean {stats.get('size_mean', 0):.1f})"),
        ("classes per client", f"mean {stats.get('classes_per_client_mean', 0):.2f}, min {stats.get('classes_per_client_min')}"),
        ("client deadline", f"{record.get('client_timeout_s')} s (ranks only)"),
    ]
    notes = []
    if record.get("proximal_mu"):
        notes.append(f"FedProx: each client minimised its loss plus (&mu;/2)||w - w<sub>global</sub>||<sup>2</sup> with &mu; = {record['proximal_mu']:g}.")
    if record.get("secure_aggregation"):
        notes.append("Secure aggregation: clients masked their updates pairwise; the server saw only their sum.")
    dp = record.get("dp")
    if dp:
        eps = dp.get("epsilon")
        notes.append(f"DP-FedAvg: client updates clipped to {dp['client_clip_norm']:g}, noise multiplier {dp['noise_multiplier']:g}; "
                     + (f"client-level (&epsilon; = {eps:.3f}, &delta; = {dp['delta']:g}) by the RDP accountant." if eps is not None else "no noise, so no guarantee."))
    dropped = record.get("dropped") or []
    if dropped:
        notes.append(f"{len(dropped)} client updates missed their deadline and were left out: "
                     + ", ".join(f"client {d['client']} in round {d['round']}" for d in dropped[:20]) + (" ..." if len(dropped) > 20 else ""))
    if record.get("discarded_rounds"):
        notes.append(f"Rounds discarded (secure aggregation cannot unmask without every chosen client): {record['discarded_rounds']}")
    body = table_html(rows, ("item", "value")) + "".join(f"<p>{n}</p>" for n in notes)
    return Section("Federated training", body, order=13)
