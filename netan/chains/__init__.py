"""Crypto-to-egress chains: the evidence graph, the three ATT&CK analytics, baselines."""
from netan.chains.builder import ChainBuilder

__all__ = ["ChainBuilder"]
