"""The evidence graph: device -> app -> key -> flow -> destination, with times (networkx)."""
from __future__ import annotations

from typing import Any

__all__ = ["EvidenceGraph", "GRAPH_FIELDS"]

#: The fields of a chain the graph draws: a chain that is never written is added with these alone.
GRAPH_FIELDS = frozenset({"chain_id", "device", "app", "subject", "score", "destinations", "keys"})


def _attrs(**kw: Any) -> dict[str, Any]:
    """GraphML takes str/int/float/bool only: drop None, stringify the rest."""
    return {k: (v if isinstance(v, (str, int, float, bool)) else str(v)) for k, v in kw.items() if v is not None}


class EvidenceGraph:
    """Chains as they are added; the networkx graph is built when it is asked for, so a run
    that writes no GraphML never imports networkx (a tenth of a second of every start-up)."""

    def __init__(self) -> None:
        self._chains: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        self._g = None

    def add_chain(self, chain: dict[str, Any], flows: list[dict[str, Any]]) -> None:
        """Keep ``chain`` (read for its ``GRAPH_FIELDS`` only) and the records of its flows."""
        self._chains.append((chain, flows))
        self._g = None

    @property
    def g(self):  # noqa: ANN201 - networkx.DiGraph, imported lazily
        if self._g is None:
            import networkx as nx

            self._g = nx.DiGraph()
            for chain, flows in self._chains:
                self._add(chain, flows)
        return self._g

    def _add(self, chain: dict[str, Any], flows: list[dict[str, Any]]) -> None:
        subject = f"app:{chain['app']}" if chain.get("app") else f"client:{chain['subject']}"
        self.g.add_node(subject, **_attrs(kind="app" if chain.get("app") else "client", label=chain["subject"]))
        if chain.get("device"):
            dev = f"device:{chain['device']}"
            self.g.add_node(dev, **_attrs(kind="device", label=chain["device"]))
            self.g.add_edge(dev, subject, relation="runs")
        for alias in chain.get("keys", []):
            k = f"key:{chain.get('device')}:{alias}"
            self.g.add_node(k, **_attrs(kind="key", label=alias))
            self.g.add_edge(subject, k, relation="owns")
        for dest in chain["destinations"]:
            self.g.add_node(f"dest:{dest}", **_attrs(kind="destination", label=dest))
        for r in flows:
            f = f"flow:{r['flow_id']}"
            self.g.add_node(f, **_attrs(kind="flow", ts=r["ts"], ts_end=r["ts_end"], bytes_out=r.get("bytes_out"),
                                        l7=r.get("l7"), chain=chain["chain_id"], score=chain["score"]))
            self.g.add_edge(subject, f, relation="sends", ts=r["ts"])
            for alias in chain.get("keys", []):
                self.g.add_edge(f"key:{chain.get('device')}:{alias}", f, relation="precedes")
            for dest in chain["destinations"]:
                self.g.add_edge(f, f"dest:{dest}", relation="to")

    def write_graphml(self, path: str) -> None:
        from netan.sinks.atomic import atomic_open

        import networkx as nx

        with atomic_open(path, "wb") as fh:
            nx.write_graphml(self.g, fh)
