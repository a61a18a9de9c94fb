"""What the broker says this strategy holds, and how positions that vanished were closed.

The live loop never trusts its own memory of a position: at start and after every order it reads the
broker's positions, keeps those carrying its magic number, and derives the side it holds from them. A
position that was open at the last look and is gone now was closed by its stop-loss or take-profit, by
the loop itself, or by someone else; the closing deals say which, and their profit is what the
RiskManager books. Pure: records in (DataFrames or lists of dicts, as MT5RestClient or a fake returns them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.trading.sizing import VOLUME_EPS

POSITION_BUY, POSITION_SELL = 0, 1  # MT5 position types
DEAL_ENTRY_IN, DEAL_ENTRY_OUT = 0, 1
# MT5 comments of closing deals: "[sl 51000.00]" / "[tp ...]" on a terminal, "sl" / "tp" in the simulator.
_STOP_PREFIXES = {"sl": "stop_loss", "[sl": "stop_loss", "tp": "take_profit", "[tp": "take_profit"}


def records(rows: Any) -> list[Mapping[str, Any]]:
    """A DataFrame or an iterable of mappings as a list of mappings."""
    if rows is None:
        return []
    if hasattr(rows, "itertuples"):
        if not len(rows):
            return []
        columns = [str(c) for c in rows.columns]
        # itertuples, not to_dict("records"): a tenth of the time on the few rows a broker returns
        return [dict(zip(columns, row, strict=True)) for row in rows.itertuples(index=False, name=None)]
    return list(rows)


@dataclass(frozen=True)
class Holding:
    """This strategy's open positions of one symbol (those with its magic number)."""

    tickets: Mapping[int, int] = field(default_factory=dict)  # ticket -> side (+1 long, -1 short)
    volumes: Mapping[int, float] = field(default_factory=dict)  # ticket -> lots
    foreign: int = 0  # positions of the symbol with another magic number (never touched)
    opened: Mapping[int, dt.datetime] = field(default_factory=dict)  # ticket -> open time (UTC), when given

    @property
    def net(self) -> float:
        return sum(self.tickets[t] * self.volumes[t] for t in self.tickets)

    @property
    def side(self) -> int:
        """+1, -1 or 0: the sign of the net position."""
        net = self.net
        return 1 if net > VOLUME_EPS else (-1 if net < -VOLUME_EPS else 0)

    def describe(self) -> dict[str, Any]:
        return {"side": self.side, "net_lots": round(self.net, 8), "tickets": {str(t): s for t, s in self.tickets.items()},
                "foreign": self.foreign}


def holding(positions: Any, symbol: str, magic: int) -> Holding:
    """The positions of ``symbol`` carrying ``magic``, from a broker's open positions."""
    tickets: dict[int, int] = {}
    volumes: dict[int, float] = {}
    opened: dict[int, dt.datetime] = {}
    foreign = 0
    for row in records(positions):
        if str(row.get("symbol", symbol)) != symbol:
            continue
        if int(row.get("magic") or 0) != magic:
            foreign += 1
            continue
        ticket = int(row["ticket"])
        tickets[ticket] = 1 if int(row["type"]) == POSITION_BUY else -1
        volumes[ticket] = float(row["volume"])
        when = row.get("time")
        if isinstance(when, dt.datetime) and when == when:  # a pandas Timestamp too (UTC), not NaT
            when = when.to_pydatetime() if hasattr(when, "to_pydatetime") else when
            opened[ticket] = when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)
    return Holding(tickets, volumes, foreign, opened)


@dataclass(frozen=True)
class Closed:
    """A position that vanished since the last look, and the deals that closed it."""

    ticket: int
    side: int
    reason: str  # stop_loss | take_profit | signal (closed by this loop) | external | unknown
    profit: float  # profit + commission + swap of its closing deals, in the account currency
    price: float | None  # volume-weighted price of the closing deals
    deals: tuple[int, ...]
    profits: tuple[float, ...] = ()  # each closing deal's profit + commission + swap, as ``deals``
    volume: float = 0.0  # lots the closing deals found cover
    opened_volume: float | None = None  # lots its opening deals found bought or sold (None: none listed)

    @property
    def deal_profits(self) -> dict[int, float]:
        """Closing deal ticket -> its profit net of costs: what the RiskManager books, once per deal."""
        return dict(zip(self.deals, self.profits, strict=True))

    @property
    def stopped(self) -> bool:
        return self.reason in ("stop_loss", "take_profit")

    def remaining(self, known: float | None, tolerance: float) -> float | None:
        """Lots of the position its closing deals found do not cover yet (0.0 once within ``tolerance``); None
        when its size is unknown. The size is what its opening deals bought or sold when they are listed (every
        closing deal, partial closes before the last look too, is among those found), else ``known`` (its last
        seen lots: a stop-out in pieces may be only partly listed when the position is already gone)."""
        size = self.opened_volume if self.opened_volume is not None else known
        if size is None:
            return None
        left = size - self.volume
        return 0.0 if left <= tolerance else left


def closed_positions(vanished: Mapping[int, int], deals: Iterable[Mapping[str, Any]],
                     own_prefix: str = "eng-") -> list[Closed]:
    """How each of ``vanished`` (ticket -> side) was closed, from the account's deal history."""
    by_position: dict[int, list[Mapping[str, Any]]] = {}
    opened: dict[int, float] = {}
    for deal in deals:
        entry, position = int(deal.get("entry", -1)), int(deal.get("position_id") or 0)
        if entry == DEAL_ENTRY_OUT:
            by_position.setdefault(position, []).append(deal)
        elif entry == DEAL_ENTRY_IN:
            opened[position] = opened.get(position, 0.0) + float(deal["volume"])
    out = []
    for ticket, side in vanished.items():
        closing = by_position.get(ticket, [])
        if not closing:
            out.append(Closed(ticket, side, "unknown", 0.0, None, (), opened_volume=opened.get(ticket)))
            continue
        volume = sum(float(d["volume"]) for d in closing)
        price = sum(float(d["price"]) * float(d["volume"]) for d in closing) / volume if volume > 0 else None
        profits = tuple(float(d.get("profit") or 0) + float(d.get("commission") or 0) + float(d.get("swap") or 0)
                        for d in closing)
        out.append(Closed(ticket, side, _reason(str(closing[-1].get("comment") or ""), own_prefix), sum(profits),
                          price, tuple(int(d["ticket"]) for d in closing), profits, volume, opened.get(ticket)))
    return out


def _reason(comment: str, own_prefix: str) -> str:
    lowered = comment.strip().lower()
    for prefix, reason in _STOP_PREFIXES.items():
        if lowered == prefix or lowered.startswith(prefix + " ") or lowered.startswith(prefix + "]"):
            return reason
    if comment.startswith(own_prefix):
        return "signal"
    return "external"


__all__ = ["Closed", "Holding", "closed_positions", "holding", "records"]
