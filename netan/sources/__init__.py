"""Packet and flow-record sources: pcap/pcapng files, live capture, Zeek logs."""
