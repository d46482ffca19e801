"""Network primitives shared by every process: address parsing and the outbound address guard."""
