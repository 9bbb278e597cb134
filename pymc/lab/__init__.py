"""The lab: tools that put real pymc processes under controlled network faults."""
