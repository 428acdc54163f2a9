"""Stock versus domain-adapted encoders on labelled customer text: one protocol, every encoder.

    config.py     the typed schema of configs/compare.yaml
    splits.py     the labelled train/test texts of a data set (test text never reaches pretraining)
    variants.py   pretrained encoders produced on demand (RTD, MLM, from scratch, + SimCSE), cached
    protocol.py   clustering (K-Means, MiniBatchKMeans) and linear probes (all labels, few-shot)
    run.py        one job: encoder x data set x seed -> metrics.json
    summary.py    a directory of jobs -> table (markdown, CSV) and bar plot
"""
