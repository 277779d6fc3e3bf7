"""Packaging for openapi_client, the Deribit session-management client."""
from __future__ import annotations

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = {}
exec((HERE / "openapi_client" / "_version.py").read_text(encoding="utf-8"), VERSION)

setup(
    name="openapi-client-deribit-session",
    version=VERSION["__version__"],
    description="A typed, resilient Python client for Deribit's session-management API",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    license_files=["LICENSE"],
    packages=find_packages(include=["openapi_client", "openapi_client.*"]),
    package_data={"openapi_client": ["py.typed"]},
    include_package_data=True,
    zip_safe=False,
    python_requires=">=3.9",
    install_requires=[
        "urllib3 >= 1.26.18, < 3",
        "python-dateutil >= 2.8.2",
        "six >= 1.16",
        "certifi >= 2023.7.22",
    ],
    extras_require={
        # Deribit's asymmetric API keys (Ed25519, RSA): Configuration(private_key=...).
        "asymmetric": ["cryptography >= 42"],
        "bench": ["matplotlib >= 3.7"],
        # The simulator's WebSocket endpoint; 15.0.x is the last release for Python 3.9.
        "websocket": [
            'websockets >= 15.0, < 16; python_version < "3.10"',
            'websockets >= 15.0; python_version >= "3.10"',
        ],
    },
    entry_points={
        "console_scripts": ["deribit-session = openapi_client.cli:console_main"],
        # The test kit's fixtures (deribit_simulator, deribit, ...): active wherever pytest runs
        # beside the package.
        "pytest11": ["openapi_client = openapi_client.testing.plugin"],
    },
    keywords=["Deribit", "OpenAPI", "heartbeat", "cancel-on-disconnect", "trading"],
    project_urls={
        "Documentation": "https://docs.deribit.com/",
        "API description": "https://docs.deribit.com/#session-management",
    },
    classifiers=[
        "Development Status :: 5 - Production/Stable",
        "Intended Audience :: Developers",
        "Intended Audience :: Financial and Insurance Industry",
        "License :: OSI Approved :: MIT License",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.9",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Office/Business :: Financial :: Investment",
        "Typing :: Typed",
    ],
)
