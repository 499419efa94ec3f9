"""Names Keras resolves, and the arguments it takes, kept here so `fmtrain validate` can check them
without importing Keras.

Generated from Keras 3.15.1 by `make keras-names` (scripts/gen_keras_names.py); `tests/test_keras_names.py`
fails when the installed Keras disagrees, which is the cue to regenerate.

An argument's kind is ``float`` (any number), ``int`` (a whole number), ``bool``, ``str``, ``list``, ``None``
or ``any``, or several joined by ``|``; ``*_REQUIRED_ARGS`` lists the arguments without a default.
"""

from __future__ import annotations

# keras.layers classes, as written in `model.layers`
LAYERS = frozenset(
    {
        'Activation', 'ActivityRegularization', 'AdaptiveAveragePooling1D', 'AdaptiveAveragePooling2D',
        'AdaptiveAveragePooling3D', 'AdaptiveMaxPooling1D', 'AdaptiveMaxPooling2D', 'AdaptiveMaxPooling3D', 'Add',
        'AdditiveAttention', 'AlphaDropout', 'Attention', 'AugMix', 'AutoContrast', 'Average', 'AveragePooling1D',
        'AveragePooling2D', 'AveragePooling3D', 'AvgPool1D', 'AvgPool2D', 'AvgPool3D', 'BatchNormalization',
        'Bidirectional', 'CategoryEncoding', 'CenterCrop', 'Concatenate',
        'ContrastLimitedAdaptiveHistogramEqualization', 'Conv1D', 'Conv1DTranspose', 'Conv2D', 'Conv2DTranspose',
        'Conv3D', 'Conv3DTranspose', 'ConvLSTM1D', 'ConvLSTM2D', 'ConvLSTM3D', 'Convolution1D',
        'Convolution1DTranspose', 'Convolution2D', 'Convolution2DTranspose', 'Convolution3D',
        'Convolution3DTranspose', 'Cropping1D', 'Cropping2D', 'Cropping3D', 'CutMix', 'Dense', 'DepthwiseConv1D',
        'DepthwiseConv2D', 'Discretization', 'Dot', 'Dropout', 'ELU', 'EinsumDense', 'Embedding', 'Equalization',
        'Flatten', 'FlaxLayer', 'GRU', 'GRUCell', 'GaussianDropout', 'GaussianNoise', 'GlobalAveragePooling1D',
        'GlobalAveragePooling2D', 'GlobalAveragePooling3D', 'GlobalAvgPool1D', 'GlobalAvgPool2D',
        'GlobalAvgPool3D', 'GlobalMaxPool1D', 'GlobalMaxPool2D', 'GlobalMaxPool3D', 'GlobalMaxPooling1D',
        'GlobalMaxPooling2D', 'GlobalMaxPooling3D', 'GroupNormalization', 'GroupQueryAttention', 'HashedCrossing',
        'Hashing', 'Identity', 'InputLayer', 'IntegerLookup', 'JaxLayer', 'LSTM', 'LSTMCell', 'Lambda', 'Layer',
        'LayerNormalization', 'LeakyReLU', 'Masking', 'MaxNumBoundingBoxes', 'MaxPool1D', 'MaxPool2D', 'MaxPool3D',
        'MaxPooling1D', 'MaxPooling2D', 'MaxPooling3D', 'Maximum', 'MelSpectrogram', 'Minimum', 'MixUp',
        'MultiHeadAttention', 'Multiply', 'Normalization', 'PReLU', 'Permute', 'Pipeline', 'RMSNormalization',
        'RNN', 'RandAugment', 'RandomBrightness', 'RandomColorDegeneration', 'RandomColorJitter', 'RandomContrast',
        'RandomCrop', 'RandomElasticTransform', 'RandomErasing', 'RandomFlip', 'RandomGaussianBlur',
        'RandomGrayscale', 'RandomHue', 'RandomInvert', 'RandomPerspective', 'RandomPosterization',
        'RandomRotation', 'RandomSaturation', 'RandomSharpness', 'RandomShear', 'RandomTranslation', 'RandomZoom',
        'ReLU', 'RepeatVector', 'Rescaling', 'Reshape', 'Resizing', 'ReversibleEmbedding', 'STFTSpectrogram',
        'SeparableConv1D', 'SeparableConv2D', 'SeparableConvolution1D', 'SeparableConvolution2D', 'SimpleRNN',
        'SimpleRNNCell', 'Softmax', 'Solarization', 'SpatialDropout1D', 'SpatialDropout2D', 'SpatialDropout3D',
        'SpectralNormalization', 'StackedRNNCells', 'StringLookup', 'Subtract', 'TFSMLayer', 'TextVectorization',
        'TimeDistributed', 'TorchModuleWrapper', 'UnitNormalization', 'UpSampling1D', 'UpSampling2D',
        'UpSampling3D', 'Wrapper', 'ZeroPadding1D', 'ZeroPadding2D', 'ZeroPadding3D'
    }
)

# keras.optimizers.get names (lower case)
OPTIMIZERS = frozenset(
    {
        'adadelta', 'adafactor', 'adagrad', 'adam', 'adamax', 'adamw', 'ftrl', 'lamb', 'lion', 'muon', 'nadam',
        'rmsprop', 'schedulefreeadamw', 'sgd'
    }
)

# keras.losses.get names
LOSSES = frozenset(
    {
        'bce', 'binary_crossentropy', 'binary_focal_crossentropy', 'categorical_crossentropy',
        'categorical_focal_crossentropy', 'categorical_hinge', 'circle', 'cosine_similarity', 'ctc', 'dice',
        'hinge', 'huber', 'kl_divergence', 'kld', 'log_cosh', 'mae', 'mape', 'mean_absolute_error',
        'mean_absolute_percentage_error', 'mean_squared_error', 'mean_squared_logarithmic_error', 'mse', 'msle',
        'poisson', 'sparse_categorical_crossentropy', 'squared_hinge', 'tversky'
    }
)

# keras.metrics.get names
METRICS = frozenset(
    {
        'accuracy', 'auc', 'bce', 'binary_accuracy', 'binary_crossentropy', 'binary_io_u', 'categorical_accuracy',
        'categorical_crossentropy', 'categorical_hinge', 'concordance_correlation', 'cosine_similarity',
        'f1_score', 'f_beta_score', 'false_negatives', 'false_positives', 'hinge', 'io_u', 'kl_divergence',
        'log_cosh_error', 'mae', 'mape', 'mean_absolute_error', 'mean_absolute_percentage_error', 'mean_io_u',
        'mean_squared_error', 'mean_squared_logarithmic_error', 'mse', 'msle', 'one_hot_io_u', 'one_hot_mean_io_u',
        'pearson_correlation', 'poisson', 'precision', 'precision_at_recall', 'r2_score', 'recall',
        'recall_at_precision', 'root_mean_squared_error', 'sensitivity_at_specificity',
        'sparse_categorical_accuracy', 'sparse_categorical_crossentropy', 'sparse_top_k_categorical_accuracy',
        'specificity_at_sensitivity', 'squared_hinge', 'top_k_categorical_accuracy', 'true_negatives',
        'true_positives'
    }
)

# keras.activations.get names
ACTIVATIONS = frozenset(
    {
        'celu', 'elu', 'exponential', 'gelu', 'glu', 'hard_shrink', 'hard_sigmoid', 'hard_silu', 'hard_swish',
        'hard_tanh', 'leaky_relu', 'linear', 'log_sigmoid', 'log_softmax', 'mish', 'relu', 'relu6', 'selu',
        'sigmoid', 'silu', 'soft_shrink', 'softmax', 'softplus', 'softsign', 'sparse_plus', 'sparse_sigmoid',
        'sparsemax', 'squareplus', 'swish', 'tanh', 'tanh_shrink', 'threshold'
    }
)

# optimizer name → {constructor argument: kind} (learning_rate and clipnorm are fields)
OPTIMIZER_ARGS: dict[str, dict[str, str]] = {
    'adadelta': {
        'rho': 'float', 'epsilon': 'float', 'weight_decay': 'float|None', 'clipvalue': 'float|None',
        'global_clipnorm': 'float|None', 'use_ema': 'bool', 'ema_momentum': 'float',
        'ema_overwrite_frequency': 'int|None', 'loss_scale_factor': 'float|None',
        'gradient_accumulation_steps': 'int|None'
    },
    'adafactor': {
        'beta_2_decay': 'float', 'epsilon_1': 'float', 'epsilon_2': 'float', 'clip_threshold': 'float',
        'relative_step': 'bool', 'weight_decay': 'float|None', 'clipvalue': 'float|None',
        'global_clipnorm': 'float|None', 'use_ema': 'bool', 'ema_momentum': 'float',
        'ema_overwrite_frequency': 'int|None', 'loss_scale_factor': 'float|None',
        'gradient_accumulation_steps': 'int|None'
    },
    'adagrad': {
        'initial_accumulator_value': 'float', 'epsilon': 'float', 'weight_decay': 'float|None',
        'clipvalue': 'float|None', 'global_clipnorm': 'float|None', 'use_ema': 'bool', 'ema_momentum': 'float',
        'ema_overwrite_frequency': 'int|None', 'loss_scale_factor': 'float|None',
        'gradient_accumulation_steps': 'int|None'
    },
    'adam': {
        'beta_1': 'float', 'beta_2': 'float', 'epsilon': 'float', 'amsgrad': 'bool', 'weight_decay': 'float|None',
        'clipvalue': 'float|None', 'global_clipnorm': 'float|None', 'use_ema': 'bool', 'ema_momentum': 'float',
        'ema_overwrite_frequency': 'int|None', 'loss_scale_factor': 'float|None',
        'gradient_accumulation_steps': 'int|None'
    },
    'adamax': {
        'beta_1': 'float', 'beta_2': 'float', 'epsilon': 'float', 'weight_decay': 'float|None',
        'clipvalue': 'float|None', 'global_clipnorm': 'float|None', 'use_ema': 'bool', 'ema_momentum': 'float',
        'ema_overwrite_frequency': 'int|None', 'loss_scale_factor': 'float|None',
        'gradient_accumulation_steps': 'int|None'
    },
    'adamw': {
        'weight_decay': 'float', 'beta_1': 'float', 'beta_2': 'float', 'epsilon': 'float', 'amsgrad': 'bool',
        'clipvalue': 'float|None', 'global_clipnorm': 'float|None', 'use_ema': 'bool', 'ema_momentum': 'float',
        'ema_overwrite_frequency': 'int|None', 'loss_scale_factor': 'float|None',
        'gradient_accumulation_steps': 'int|None'
    },
    'ftrl': {
        'learning_rate_power': 'float', 'initial_accumulator_value': 'float',
        'l1_regularization_strength': 'float', 'l2_regularization_strength': 'float',
        'l2_shrinkage_regularization_strength': 'float', 'beta': 'float', 'weight_decay': 'float|None',
        'clipvalue': 'float|None', 'global_clipnorm': 'float|None', 'use_ema': 'bool', 'ema_momentum': 'float',
        'ema_overwrite_frequency': 'int|None', 'loss_scale_factor': 'float|None',
        'gradient_accumulation_steps': 'int|None'
    },
    'lamb': {
        'beta_1': 'float', 'beta_2': 'float', 'epsilon': 'float', 'weight_decay': 'float|None',
        'clipvalue': 'float|None', 'global_clipnorm': 'float|None', 'use_ema': 'bool', 'ema_momentum': 'float',
        'ema_overwrite_frequency': 'int|None', 'loss_scale_factor': 'float|None',
        'gradient_accumulation_steps': 'int|None'
    },
    'lion': {
        'beta_1': 'float', 'beta_2': 'float', 'weight_decay': 'float|None', 'clipvalue': 'float|None',
        'global_clipnorm': 'float|None', 'use_ema': 'bool', 'ema_momentum': 'float',
        'ema_overwrite_frequency': 'int|None', 'loss_scale_factor': 'float|None',
        'gradient_accumulation_steps': 'int|None'
    },
    'muon': {
        'adam_beta_1': 'float', 'adam_beta_2': 'float', 'adam_weight_decay': 'float', 'epsilon': 'float',
        'weight_decay': 'float', 'clipvalue': 'float|None', 'global_clipnorm': 'float|None', 'use_ema': 'bool',
        'ema_momentum': 'float', 'ema_overwrite_frequency': 'int|None', 'loss_scale_factor': 'float|None',
        'gradient_accumulation_steps': 'int|None', 'exclude_layers': 'list|None', 'exclude_embeddings': 'bool',
        'muon_a': 'float', 'muon_b': 'float', 'muon_c': 'float', 'adam_lr_ratio': 'float', 'momentum': 'float',
        'ns_steps': 'int', 'nesterov': 'bool', 'rms_rate': 'float'
    },
    'nadam': {
        'beta_1': 'float', 'beta_2': 'float', 'epsilon': 'float', 'weight_decay': 'float|None',
        'clipvalue': 'float|None', 'global_clipnorm': 'float|None', 'use_ema': 'bool', 'ema_momentum': 'float',
        'ema_overwrite_frequency': 'int|None', 'loss_scale_factor': 'float|None',
        'gradient_accumulation_steps': 'int|None'
    },
    'rmsprop': {
        'rho': 'float', 'momentum': 'float', 'epsilon': 'float', 'centered': 'bool', 'weight_decay': 'float|None',
        'clipvalue': 'float|None', 'global_clipnorm': 'float|None', 'use_ema': 'bool', 'ema_momentum': 'float',
        'ema_overwrite_frequency': 'int|None', 'loss_scale_factor': 'float|None',
        'gradient_accumulation_steps': 'int|None'
    },
    'schedulefreeadamw': {
        'beta_1': 'float', 'beta_2': 'float', 'epsilon': 'float', 'warmup_steps': 'int',
        'weight_decay': 'float|None', 'clipvalue': 'float|None', 'global_clipnorm': 'float|None',
        'use_ema': 'bool', 'ema_momentum': 'float', 'ema_overwrite_frequency': 'int|None',
        'loss_scale_factor': 'float|None', 'gradient_accumulation_steps': 'int|None'
    },
    'sgd': {
        'momentum': 'float', 'nesterov': 'bool', 'weight_decay': 'float|None', 'clipvalue': 'float|None',
        'global_clipnorm': 'float|None', 'use_ema': 'bool', 'ema_momentum': 'float',
        'ema_overwrite_frequency': 'int|None', 'loss_scale_factor': 'float|None',
        'gradient_accumulation_steps': 'int|None'
    },
}

# optimizer name → arguments it cannot do without
OPTIMIZER_REQUIRED_ARGS: dict[str, tuple[str, ...]] = {}

# loss name → {argument of the loss function keras.losses.get returns: kind}
LOSS_ARGS: dict[str, dict[str, str]] = {
    'bce': {'from_logits': 'bool', 'label_smoothing': 'float', 'axis': 'int'},
    'binary_crossentropy': {'from_logits': 'bool', 'label_smoothing': 'float', 'axis': 'int'},
    'binary_focal_crossentropy': {
        'apply_class_balancing': 'bool', 'alpha': 'float', 'gamma': 'float', 'from_logits': 'bool',
        'label_smoothing': 'float', 'axis': 'int'
    },
    'categorical_crossentropy': {'from_logits': 'bool', 'label_smoothing': 'float', 'axis': 'int'},
    'categorical_focal_crossentropy': {
        'alpha': 'float', 'gamma': 'float', 'from_logits': 'bool', 'label_smoothing': 'float', 'axis': 'int'
    },
    'categorical_hinge': {},
    'circle': {
        'ref_labels': 'any', 'ref_embeddings': 'any', 'remove_diagonal': 'bool', 'gamma': 'float',
        'margin': 'float'
    },
    'cosine_similarity': {'axis': 'int'},
    'ctc': {},
    'dice': {'axis': 'int|list|None'},
    'hinge': {},
    'huber': {'delta': 'float'},
    'kl_divergence': {},
    'kld': {},
    'log_cosh': {},
    'mae': {},
    'mape': {},
    'mean_absolute_error': {},
    'mean_absolute_percentage_error': {},
    'mean_squared_error': {},
    'mean_squared_logarithmic_error': {},
    'mse': {},
    'msle': {},
    'poisson': {},
    'sparse_categorical_crossentropy': {'from_logits': 'bool', 'ignore_class': 'int|None', 'axis': 'int'},
    'squared_hinge': {},
    'tversky': {'alpha': 'float', 'beta': 'float', 'axis': 'int|list|None'},
}

# loss name → arguments it cannot do without
LOSS_REQUIRED_ARGS: dict[str, tuple[str, ...]] = {}

# metric name → {constructor argument: kind} (fmtrain names the metric itself)
METRIC_ARGS: dict[str, dict[str, str]] = {
    'accuracy': {'dtype': 'str|None'},
    'auc': {
        'num_thresholds': 'int', 'curve': 'str', 'summation_method': 'str', 'dtype': 'str|None',
        'thresholds': 'float|list|None', 'multi_label': 'bool', 'num_labels': 'int|None',
        'label_weights': 'list|None', 'from_logits': 'bool'
    },
    'bce': {'dtype': 'str|None', 'from_logits': 'bool', 'label_smoothing': 'float'},
    'binary_accuracy': {'dtype': 'str|None', 'threshold': 'float'},
    'binary_crossentropy': {'dtype': 'str|None', 'from_logits': 'bool', 'label_smoothing': 'float'},
    'binary_io_u': {'target_class_ids': 'list', 'threshold': 'float', 'dtype': 'str|None'},
    'categorical_accuracy': {'dtype': 'str|None'},
    'categorical_crossentropy': {
        'dtype': 'str|None', 'from_logits': 'bool', 'label_smoothing': 'float', 'axis': 'int'
    },
    'categorical_hinge': {'dtype': 'str|None'},
    'concordance_correlation': {'dtype': 'str|None', 'axis': 'int'},
    'cosine_similarity': {'dtype': 'str|None', 'axis': 'int'},
    'f1_score': {'average': 'str|None', 'threshold': 'float|None', 'dtype': 'str|None'},
    'f_beta_score': {'average': 'str|None', 'beta': 'float', 'threshold': 'float|None', 'dtype': 'str|None'},
    'false_negatives': {'thresholds': 'float|list|None', 'dtype': 'str|None'},
    'false_positives': {'thresholds': 'float|list|None', 'dtype': 'str|None'},
    'hinge': {'dtype': 'str|None'},
    'io_u': {
        'num_classes': 'int', 'target_class_ids': 'list', 'dtype': 'str|None', 'ignore_class': 'int|None',
        'sparse_y_true': 'bool', 'sparse_y_pred': 'bool', 'axis': 'int'
    },
    'kl_divergence': {'dtype': 'str|None'},
    'log_cosh_error': {'dtype': 'str|None'},
    'mae': {'dtype': 'str|None'},
    'mape': {'dtype': 'str|None'},
    'mean_absolute_error': {'dtype': 'str|None'},
    'mean_absolute_percentage_error': {'dtype': 'str|None'},
    'mean_io_u': {
        'num_classes': 'int', 'dtype': 'str|None', 'ignore_class': 'int|None', 'sparse_y_true': 'bool',
        'sparse_y_pred': 'bool', 'axis': 'int'
    },
    'mean_squared_error': {'dtype': 'str|None'},
    'mean_squared_logarithmic_error': {'dtype': 'str|None'},
    'mse': {'dtype': 'str|None'},
    'msle': {'dtype': 'str|None'},
    'one_hot_io_u': {
        'num_classes': 'int', 'target_class_ids': 'list', 'dtype': 'str|None', 'ignore_class': 'int|None',
        'sparse_y_pred': 'bool', 'axis': 'int'
    },
    'one_hot_mean_io_u': {
        'num_classes': 'int', 'dtype': 'str|None', 'ignore_class': 'int|None', 'sparse_y_pred': 'bool',
        'axis': 'int'
    },
    'pearson_correlation': {'dtype': 'str|None', 'axis': 'int'},
    'poisson': {'dtype': 'str|None'},
    'precision': {
        'thresholds': 'float|list|None', 'top_k': 'int|None', 'class_id': 'int|None', 'dtype': 'str|None'
    },
    'precision_at_recall': {
        'recall': 'float', 'num_thresholds': 'int', 'class_id': 'int|None', 'dtype': 'str|None'
    },
    'r2_score': {'class_aggregation': 'str', 'num_regressors': 'int', 'dtype': 'str|None'},
    'recall': {'thresholds': 'float|list|None', 'top_k': 'int|None', 'class_id': 'int|None', 'dtype': 'str|None'},
    'recall_at_precision': {
        'precision': 'float', 'num_thresholds': 'int', 'class_id': 'int|None', 'dtype': 'str|None'
    },
    'root_mean_squared_error': {'dtype': 'str|None'},
    'sensitivity_at_specificity': {
        'specificity': 'float', 'num_thresholds': 'int', 'class_id': 'int|None', 'dtype': 'str|None'
    },
    'sparse_categorical_accuracy': {'dtype': 'str|None'},
    'sparse_categorical_crossentropy': {
        'dtype': 'str|None', 'from_logits': 'bool', 'ignore_class': 'int|None', 'axis': 'int'
    },
    'sparse_top_k_categorical_accuracy': {'k': 'int', 'dtype': 'str|None', 'from_sorted_ids': 'bool'},
    'specificity_at_sensitivity': {
        'sensitivity': 'float', 'num_thresholds': 'int', 'class_id': 'int|None', 'dtype': 'str|None'
    },
    'squared_hinge': {'dtype': 'str|None'},
    'top_k_categorical_accuracy': {'k': 'int', 'dtype': 'str|None'},
    'true_negatives': {'thresholds': 'float|list|None', 'dtype': 'str|None'},
    'true_positives': {'thresholds': 'float|list|None', 'dtype': 'str|None'},
}

# metric name → arguments it cannot do without
METRIC_REQUIRED_ARGS: dict[str, tuple[str, ...]] = {
    'io_u': ('num_classes', 'target_class_ids'),
    'mean_io_u': ('num_classes',),
    'one_hot_io_u': ('num_classes', 'target_class_ids'),
    'one_hot_mean_io_u': ('num_classes',),
    'precision_at_recall': ('recall',),
    'recall_at_precision': ('precision',),
    'sensitivity_at_specificity': ('specificity',),
    'specificity_at_sensitivity': ('sensitivity',),
}
