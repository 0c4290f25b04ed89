"""omd: the HKEX OMD-C binary protocol, used by both ends (the simulator's publisher and
retransmission server, and the feed handler). Pure: no sockets, no clock.

`wire`: the message formats (encode and decode); `packets`: the packet header, packing
messages into packets and reading packets from a stream.
"""
