"""What the flow engine hands to the analyzers: one flow's bounded, ordered sample.

The sample is the contract between the hot path (netan.flows) and every sans-IO
analyzer (netan.analyzers.*). It holds no sockets, files or clocks, only bytes
and the packet boundaries inside them, so analyzers can be driven by hand in
tests exactly as the engine drives them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["PacketMark", "Message", "FlowSample", "OUT", "IN"]

OUT = 0  # originator -> responder
IN = 1  # responder -> originator


@dataclass(frozen=True, slots=True)
class PacketMark:
    """One payload-carrying packet, located inside its direction's sample.

    ``offset`` is the position of the packet's first byte in that direction's
    sample (TCP: relative to the first sequence number seen, so retransmissions
    and reordering do not move it; UDP and others: datagrams laid end to end).
    ``length`` is the packet's payload length on the wire; only the part below
    the sample cap is present in the sample bytes.
    """

    direction: int
    ts: float
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class Message:
    """A run of same-direction payload between two direction changes.

    Non-TLS framing (length prefixes, block alignment) is judged per message,
    because an application writes one message and TCP may cut it anywhere.
    ``data`` is the part of the message inside the sample; ``length`` the
    whole message length seen on the wire (may exceed ``len(data)``).
    """

    direction: int
    ts: float
    offset: int
    length: int
    data: bytes


@dataclass(frozen=True, slots=True)
class FlowSample:
    """A flow's sampled payload, per direction, in stream order.

    ``out``/``inb`` are the first K bytes of each direction (TCP: reassembled in
    sequence order, retransmissions removed; holes that were never filled are
    listed in ``gaps_out``/``gaps_in`` as (offset, length) and zero-filled in the
    bytes). ``packets`` lists the payload packets in arrival order (bounded);
    for UDP each one is a datagram and ``datagram()`` returns its bytes.
    """

    proto: str
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    out: bytes = b""
    inb: bytes = b""
    gaps_out: tuple[tuple[int, int], ...] = ()
    gaps_in: tuple[tuple[int, int], ...] = ()
    packets: tuple[PacketMark, ...] = field(default_factory=tuple)

    def stream(self, direction: int) -> bytes:
        return self.out if direction == OUT else self.inb

    def gaps(self, direction: int) -> tuple[tuple[int, int], ...]:
        return self.gaps_out if direction == OUT else self.gaps_in

    def datagram(self, mark: PacketMark) -> bytes:
        """The sampled bytes of one packet (a whole datagram for UDP)."""
        data = self.stream(mark.direction)
        return data[mark.offset : mark.offset + mark.length]

    def datagrams(self, direction: int | None = None) -> list[tuple[PacketMark, bytes]]:
        return [
            (m, self.datagram(m))
            for m in self.packets
            if direction is None or m.direction == direction
        ]

    def messages(self) -> list[Message]:
        """Merge consecutive same-direction packets into application messages."""
        merged: list[Message] = []
        run: list[PacketMark] = []

        def close() -> None:
            if not run:
                return
            first = run[0]
            start = min(m.offset for m in run)
            end = max(m.offset + m.length for m in run)
            data = self.stream(first.direction)[start:end]
            merged.append(Message(first.direction, first.ts, start, end - start, data))
            run.clear()

        for mark in self.packets:
            if run and mark.direction != run[0].direction:
                close()
            run.append(mark)
        close()
        return merged
