"""`make chaos`: the whole stack as separate processes under load and injected faults, then a Jepsen-style audit."""
