"""The edge benchmark's model zoo: MLPerf Tiny-shaped nets on 28x28x1 Fashion-MNIST, one trainer.

:mod:`legc_research.zoo.nets` builds the nets (one definition for Keras 3 and tf_keras) and counts
their MACs; :mod:`legc_research.zoo.train` trains them on a fixed budget per net, deterministically,
with cached dense checkpoints. ``legc_research.evidence.edge_suite`` runs the benchmark on them.
"""

from legc_research.zoo.nets import NETS, RESNET8_FILTERS, build, count_macs

__all__ = ["NETS", "RESNET8_FILTERS", "build", "count_macs"]
