"""Files become byte streams: packet layouts, the pcap/pcapng reader and TCP reassembly."""
