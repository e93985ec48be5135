"""The on-box agent: the only long-lived Python process.

It owns the engine (and, as the edge layers land, the kernel programs) and applies
each new config beside the running one before swapping, so a rejected config
never stops what is serving.
"""
