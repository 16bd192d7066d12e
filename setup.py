"""Installation script for sk-mlcpc (tool settings live in pyproject.toml)."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = {}
exec((HERE / "sk_mlcpc" / "_version.py").read_text(), VERSION)

setup(
    name="sk-mlcpc",
    version=VERSION["__version__"],
    description=(
        "Multi-label Contrastive Predictive Coding (ML-CPC): contrastive mutual information "
        "bounds and estimators for scikit-learn, trained with skorch."
    ),
    long_description=(HERE / "README.rst").read_text(encoding="utf-8"),
    long_description_content_type="text/x-rst",
    license="BSD-3-Clause",
    python_requires=">=3.10",
    packages=find_packages(include=["sk_mlcpc", "sk_mlcpc.*"]),
    install_requires=[
        "numpy>=1.24,<3",
        # validate_data, _parameter_constraints and __sklearn_tags__ as used here appeared in 1.6.
        "scikit-learn>=1.6,<1.10",
        "torch>=2.2,<3",
        "skorch>=1.0,<2",
        # Already required by scikit-learn; used directly for confidence intervals and the
        # normal quantiles of NormalQuantileTransformer.
        "scipy>=1.10",
        # Already required by scikit-learn; limits the BLAS/OpenMP pools (n_threads).
        "threadpoolctl>=3.1",
    ],
    extras_require={
        "plot": ["matplotlib>=3.6"],
        "test": [
            "pytest>=7",
            "pandas>=1.5",
            "ruff>=0.5",
            "matplotlib>=3.6",
            "hypothesis>=6",
            "accelerate>=1.0",
            # GridSearchCV on a real dask LocalCluster through joblib's dask backend.
            "dask[distributed]>=2024.1",
        ],
        # Multi-process training (sk_mlcpc.distributed) through skorch's AccelerateMixin.
        "distributed": ["accelerate>=1.0"],
        "docs": [
            "sphinx>=7",
            "numpydoc>=1.6",
            "pydata-sphinx-theme>=0.15",
            "sphinx-gallery>=0.16",
            "matplotlib>=3.6",
            "pandas>=1.5",
        ],
        "bench": ["matplotlib>=3.6", "pandas>=1.5", "aeon>=1.0"],
    },
    entry_points={"console_scripts": ["sk-mlcpc=sk_mlcpc._tools.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Intended Audience :: Science/Research",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "License :: OSI Approved :: BSD License",
    ],
)
