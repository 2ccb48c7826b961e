"""The names the command line checks before anything heavy is imported: datasets, protocols, methods."""

PAIR_DATASETS = ("avmnist", "digits-fsdd", "synthetic", "arrays", "ave", "cremad", "vggsound", "ravdess")
MODALITY_DATASETS = ("mnist", "fsdd", "digits")
DEFAULT_DATASET = "avmnist"
PROTOCOLS = ("class_resample", "permutation", "paired", "fixed_class")
PAIRED_PROTOCOLS = ("paired", "fixed_class")
METHODS = ("ce", "vanilla_kd", "feature_kd", "joint", "ucmkd", "deepjdot", "dann", "coral", "ot_pseudo")
ADAPTATION_METHODS = ("deepjdot", "dann", "coral", "ot_pseudo")  # domain adaptation: teacher labels via features
