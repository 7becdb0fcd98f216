"""nnU-Net plans for the tests that run nnU-Net's own exporter."""


def nnunet_plans(io_name, spacing, shape, dataset_name="Dataset999_RankSEG"):
    """The smallest plans nnU-Net's exporter reads: identity transposes, no resampling."""
    return {
        "dataset_name": dataset_name,
        "plans_name": "nnUNetPlans",
        "image_reader_writer": io_name,
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "label_manager": "LabelManager",
        "original_median_spacing_after_transp": list(spacing),
        "original_median_shape_after_transp": list(shape),
        "configurations": {
            "3d_fullres": {
                "spacing": list(spacing),
                "patch_size": [4, 4, 4],
                "data_identifier": "nnUNetPlans_3d_fullres",
                "preprocessor_name": "DefaultPreprocessor",
                "batch_size": 2,
                "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                "resampling_fn_probabilities_kwargs": {
                    "is_seg": False,
                    "order": 1,
                    "order_z": 0,
                    "force_separate_z": None,
                },
                "architecture": {
                    "network_class_name": "unused",
                    "arch_kwargs": {},
                    "_kw_requires_import": [],
                },
            }
        },
    }
