"""Cache backends: the contract (:mod:`.base`), in-process memory, and Redis."""
