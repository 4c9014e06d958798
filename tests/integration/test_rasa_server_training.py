"""Training through our running Rasa server (``POST /model/train``), with our channel, stores and patches
loaded as in deployment (bot/rasa_ext). Finding of issue 19: Rasa's graph validation rejected every config
with LogisticRegressionClassifier in that process ("needs the param 'self'")."""

from __future__ import annotations

import tarfile
from io import BytesIO

import aiohttp
import pytest
import yaml

from bot.core.settings import Settings
from tests.test_training_with_our_changes import CONFIG, DATA, DOMAIN

pytestmark = pytest.mark.integration


async def test_a_model_trains_through_our_rasa_server(stack: Settings, http: aiohttp.ClientSession) -> None:
    project = {**CONFIG, **DOMAIN, **DATA}
    async with http.post(f"{stack.rasa_urls[0]}/model/train",
                         params={"token": stack.rasa_token, "save_to_default_model_directory": "false"},
                         data=yaml.safe_dump(project), headers={"Content-Type": "application/yaml"},
                         timeout=aiohttp.ClientTimeout(total=300)) as response:
        body = await response.read()
        assert response.status == 200, body[:500]
    with tarfile.open(fileobj=BytesIO(body)) as model:
        assert any(name.endswith("metadata.json") for name in model.getnames())
