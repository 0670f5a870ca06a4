"""End to end in a real browser: a tiny `dvc repro`, then the MLflow UI on loopback shows the champion,
its gate tags and its model card the way a person would see them (headless system Chromium via Selenium)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from tests.conftest import bin_path, make_project, project_env, tiny_params
from tests.e2e.browser import (
    body_text,
    chromium,
    expand_section,
    missing_browser,
    mlflow_ui,
    scroll_into_view,
    wait_until,
)

MODEL = "dlops-tabular-mlp"
_MISSING = missing_browser()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.e2e,
    pytest.mark.skipif(_MISSING is not None, reason=f"no headless browser: {_MISSING}"),
]


def words(text: str) -> str:
    """Whitespace (newlines, &nbsp;) collapsed to single spaces, as a reader sees it."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def ui_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_project(tmp_path_factory.mktemp("e2e") / "project", tiny_params())
    proc = subprocess.run(
        [bin_path("dvc"), "repro"], cwd=root, env=project_env(root), capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise AssertionError(f"dvc repro failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return root


@pytest.fixture(scope="module")
def champion(ui_project: Path) -> str:
    """The champion's version number, from the registry (the page is then checked to show it)."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{ui_project}/mlflow.db"
    return str(
        MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(MODEL, "champion").version
    )


@pytest.fixture(scope="module")
def ui_url(ui_project: Path) -> Iterator[str]:
    with mlflow_ui(
        bin_path("mlflow"), ui_project, project_env(ui_project), ui_project.parent / "logs"
    ) as url:
        yield url


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SE_OFFLINE", "true")  # Selenium Manager must never fetch a browser or a driver
        browser = chromium()
        try:
            yield browser
        finally:
            browser.quit()


def _version_row(driver: WebDriver, version: str) -> WebElement | None:
    rows = driver.find_elements(
        By.XPATH,
        "//*[@data-testid='model-version-table']//*[@role='row']"
        f"[.//a[normalize-space(.)='Version {version}']]",
    )
    return rows[0] if rows else None


def _column(driver: WebDriver, row: WebElement, header: str) -> WebElement | None:
    """The cell of `row` under the column headed `header` in the versions table."""
    headers = driver.find_elements(
        By.XPATH, "//*[@data-testid='model-version-table']//*[@role='columnheader']"
    )
    names = [words(h.text) for h in headers]
    if header not in names:
        return None
    cells = row.find_elements(By.XPATH, "./*[@role='cell']")
    return cells[names.index(header)] if len(cells) == len(names) else None


def _tag_row(driver: WebDriver, key: str) -> WebElement | None:
    rows = driver.find_elements(
        By.XPATH, f"//*[@data-testid='tags-section']//tr[td[1][normalize-space(.)='{key}']]"
    )
    return rows[0] if rows else None


def _open_version_page(driver: WebDriver, ui_url: str, champion: str, shot: Path) -> None:
    driver.get(f"{ui_url}/#/models/{MODEL}/versions/{champion}")
    wait_until(
        driver,
        lambda d: any(
            words(h.text) == f"Version {champion}" for h in d.find_elements(By.XPATH, "//h1 | //h2")
        ),
        f"the 'Version {champion}' title",
        shot,
    )


def test_model_page_shows_the_champion_version_with_its_alias(
    driver: WebDriver, ui_url: str, champion: str, tmp_path: Path
) -> None:
    shot = tmp_path / "model-page.png"
    driver.get(f"{ui_url}/#/models/{MODEL}")
    wait_until(driver, lambda d: MODEL in words(body_text(d)), f"the {MODEL} page", shot)
    expand_section(driver, "Versions", shot)
    row = wait_until(driver, lambda d: _version_row(d, champion), f"the row of Version {champion}", shot)
    aliases = wait_until(
        driver,
        lambda d: (cell := _column(d, row, "Aliases")) is not None and "champion" in cell.text and cell,
        f"'champion' in the Aliases column of Version {champion}",
        shot,
    )
    link = row.find_element(By.XPATH, f".//a[normalize-space(.)='Version {champion}']")
    scroll_into_view(driver, link)  # the row is as tall as its tag list: centre its first line
    driver.save_screenshot(str(shot))
    assert row.is_displayed() and aliases.is_displayed(), (
        f"Version {champion} row hidden:\n{body_text(driver)}"
    )
    assert "@ champion" in words(aliases.text), (
        f"aliases cell reads {aliases.text!r}; see {shot}\n{body_text(driver)}"
    )


def test_version_page_shows_the_alias_and_the_gate_tags(
    driver: WebDriver, ui_url: str, champion: str, tmp_path: Path
) -> None:
    shot = tmp_path / "version-tags.png"
    _open_version_page(driver, ui_url, champion, shot)
    alias_item = wait_until(
        driver,
        lambda d: next(
            (
                item
                for item in d.find_elements(By.XPATH, "//*[@data-testid='descriptions-item']")
                if words(item.text).startswith("Aliases") and "champion" in item.text
            ),
            None,
        ),
        "'@ champion' next to 'Aliases' in the version header",
        shot,
    )
    assert alias_item.is_displayed(), f"the Aliases item is hidden:\n{body_text(driver)}"
    expand_section(driver, "Tags", shot)
    expected = {"decision": "promoted", "gate.min_primary.passed": "true"}
    for key, value in expected.items():
        row = wait_until(driver, lambda d, key=key: _tag_row(d, key), f"the tag row {key!r}", shot)
        scroll_into_view(driver, row)
        cells = row.find_elements(By.TAG_NAME, "td")
        seen = [words(c.text) for c in cells[:2]]
        driver.save_screenshot(str(shot))  # the last one kept shows the gate tag
        assert row.is_displayed() and seen == [key, value], (
            f"tag row {key!r} reads {seen}, expected {[key, value]}; see {shot}\n{body_text(driver)}"
        )


def test_version_page_renders_the_model_card(
    driver: WebDriver, ui_url: str, champion: str, tmp_path: Path
) -> None:
    shot = tmp_path / "version-card.png"
    _open_version_page(driver, ui_url, champion, shot)
    expand_section(driver, "Description", shot)
    card = wait_until(
        driver,
        lambda d: next(
            iter(d.find_elements(By.XPATH, "//*[@data-testid='note-editor-preview-content']")), None
        ),
        "the rendered description (model card)",
        shot,
    )
    wait_until(driver, lambda d: "Decision" in card.text, "'Decision' in the model card", shot)
    scroll_into_view(driver, card, block="start")  # the card's title and decision line open it
    driver.save_screenshot(str(shot))
    text = card.text
    context = f"model card reads:\n{text[:3000]}\nsee {shot}; page:\n{body_text(driver)}"
    assert card.is_displayed(), context
    assert "Decision" in text and "balanced_accuracy" in text, context
    for section in ("Metrics", "Gates", "Fairness gaps", "Feature importance"):  # the card's sections
        assert section in text, f"no {section!r} section; {context}"
    assert f"{MODEL} v{champion}" in text and "95% CI" in text, context
    # rendered markdown, not the raw source: headings/lists/tables are elements, no '#' left in the text
    rendered = card.find_elements(By.XPATH, ".//h1 | .//h2 | .//h3 | .//h4 | .//ul | .//ol | .//table")
    assert rendered, f"no rendered markdown elements in the description; {context}"
    assert not re.search(r"^\s*#{1,6} ", text, flags=re.MULTILINE), f"raw markdown heading; {context}"
