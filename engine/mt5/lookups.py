"""Finding an order after its answer was lost, in frames the client read (pure: no I/O).

By magic+comment in the deals and pending orders (this contract), or, where the quant-server bridge
offers no history without a position and drops a close's comment, by the position the order opened and
by the exit deals a close added.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.mt5 import contract

if TYPE_CHECKING:
    import pandas as pd

FOUND = "found by magic+comment"


def deal_result(deals: pd.DataFrame, comment: str, magic: int | None, position: int | None) -> dict[str, Any] | None:
    hit = deals[deals["comment"] == comment]
    if magic is not None:
        hit = hit[hit["magic"] == magic]
    if position is not None:
        hit = hit[hit["position_id"] == position]
    if not len(hit):
        return None
    deal = hit.iloc[-1]
    return contract.result(contract.RETCODE_DONE, deal=int(deal["ticket"]), order=int(deal["order"]),
                           volume=float(deal["volume"]), price=float(deal["price"]), comment=FOUND)


def pending_result(pending: pd.DataFrame, comment: str, magic: int | None) -> dict[str, Any] | None:
    hit = pending[(pending["comment"] == comment) & (pending["magic"] == magic)]
    if not len(hit):
        return None
    order = hit.iloc[-1]
    return contract.result(contract.RETCODE_PLACED, order=int(order["ticket"]), volume=float(order["volume_initial"]),
                           price=float(order["price_open"]), comment=FOUND)


def opened_position(positions: pd.DataFrame, comment: str, magic: int | None) -> int | None:
    """The ticket of the open position carrying ``comment`` (and ``magic``): what a market order opened."""
    hit = positions[positions["comment"] == comment]
    if magic is not None:
        hit = hit[hit["magic"] == magic]
    return int(hit["ticket"].iloc[-1]) if len(hit) else None


def entry_result(deals: pd.DataFrame, position: int) -> dict[str, Any]:
    """The result of the deal that opened ``position`` (deals of that position, as the bridge lists them)."""
    entries = deals[deals["entry"] == contract.DEAL_ENTRY_IN]
    if not len(entries):
        return contract.result(contract.RETCODE_DONE, order=position, comment=FOUND)
    deal = entries.iloc[0]
    return contract.result(contract.RETCODE_DONE, deal=int(deal["ticket"]), order=int(deal["order"]),
                           volume=float(deal["volume"]), price=float(deal["price"]), comment=FOUND)


def exits(deals: pd.DataFrame) -> pd.DataFrame:
    return deals[deals["entry"] == contract.DEAL_ENTRY_OUT]


def exit_result(deals: pd.DataFrame, seen: int) -> dict[str, Any] | None:
    """The newest exit deal when there are more than ``seen`` (the count before a close was sent)."""
    out = exits(deals)
    if len(out) <= seen:
        return None
    deal = out.iloc[-1]
    return contract.result(contract.RETCODE_DONE, deal=int(deal["ticket"]), order=int(deal["order"]),
                           volume=float(deal["volume"]), price=float(deal["price"]),
                           comment="found by the position's exit deals")
