"""Language models as policies: the book's tiny language, its transformer, and the
losses that fine-tune it from feedback.

Modules, one concept each (import them, e.g. ``from rlbook_lib.llm import transformer``):
the grammar and tokenizer of a synthetic language, a decoder-only transformer with a
key-value cache, sampling and sequence log-probabilities, pre-training, and the
feedback losses of the RLHF chapters (preferences, reward models, KL control,
REINFORCE-family estimators, DPO).
"""
