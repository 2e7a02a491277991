"""Sampling: the Sampler, its strategies (uniform, stratified, prioritized), the SampleSource
protocol, the sum tree and the priorities file.

Nothing is imported here: the public names are exported by ``replaystore.store``."""
