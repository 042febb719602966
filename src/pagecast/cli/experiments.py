"""`pagecast campaigns results | winner`: an A/B campaign's results by variant and its
experiment's decision, and the winner picked by hand (docs/experiments.md)."""

from __future__ import annotations

from typing import Any

import typer

from pagecast.cli.base import campaigns_app, cli_actor, fail, id_argument, run


def _percent(rate: dict[str, Any]) -> str:
    if rate["rate"] is None:
        return "–"
    return f"{rate['rate'] * 100:.1f} % ({rate['low'] * 100:.1f}–{rate['high'] * 100:.1f})"


def result_lines(experiment: dict[str, Any]) -> list[str]:
    """The experiment object of GET /api/campaigns/{id} as lines: the decision, one row per
    variant (counts, and rates with their 95 % intervals), the holdout."""
    lines = []
    if experiment.get("status"):
        winner = experiment.get("winner") or "none yet"
        lines.append(f"Experiment: {experiment['status']}, winner {winner}.")
        if experiment.get("reason"):
            lines.append(f"  {experiment['reason']}")
    lines.append(
        "variant\tsent\tdelivered\tread\tclicked\treplied\tread rate\tclick rate\treply rate"
    )
    for key, row in experiment["variants"].items():
        rates = row["rates"]
        lines.append(
            f"{key}\t{row['sent']}\t{row['delivered']}\t{row['read']}\t{row['clicked']}\t"
            f"{row['replied']}\t{_percent(rates['read_rate'])}\t{_percent(rates['click_rate'])}"
            f"\t{_percent(rates['reply_rate'])}"
        )
    holdout = experiment.get("holdout")
    if holdout:
        lines.append(
            f"holdout\t{holdout['size']} people, {holdout['replied']} wrote since the start: "
            f"{_percent(holdout['reply_rate'])}"
        )
        for key, lift in holdout["lift"].items():
            if lift is not None:
                lines.append(f"  lift of {key}'s reply rate: {lift * 100:+.1f} points")
    return lines


@campaigns_app.command("results")
def campaigns_results(campaign_id: int = id_argument()) -> None:
    """An A/B campaign's results by variant and its experiment's decision."""
    from pagecast.services import campaigns, experiments

    async def fetch(ctx: Any) -> Any:
        async with ctx.db.transaction() as session:
            campaign = await campaigns.get(session, campaign_id)
            return await experiments.report(session, campaign)

    experiment = run(fetch)
    if experiment is None:
        fail(f"Campaign {campaign_id} has no variants; it sends one message to everyone.")
    for line in result_lines(experiment):
        typer.echo(line)


@campaigns_app.command("winner")
def campaigns_winner(
    campaign_id: int = id_argument(),
    key: str = typer.Argument(..., help="The variant the rest gets: A, B, C, D or E."),
) -> None:
    """Pick an experiment's winner by hand: the rest of the audience gets that variant."""
    from pagecast import actions
    from pagecast.cli.data import with_redis

    async def pick(ctx: Any) -> Any:
        return await with_redis(
            ctx, lambda: actions.pick_winner(ctx, cli_actor(), campaign_id, key.strip())
        )

    campaign = run(pick)
    typer.echo(
        f"Campaign {campaign.id}: {campaign.winner} won; {campaign.n_pending:,} people "
        "waiting for it are now due."
    )
