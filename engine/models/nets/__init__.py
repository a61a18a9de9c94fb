"""The neural families: one plain ``nn.Module`` per architecture (``dnn``, ``lstm``, ``transformer``,
``cnn1d``), the one LightningModule they all train in (``lit``), their registry, the training of one
split (``training``) and the family strategy ``MLPipeline`` drives them through (``family``).

This package's ``__init__`` and ``family`` import no torch; the other modules do.
"""
