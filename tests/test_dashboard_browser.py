"""The dashboard in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by selenium),
against a real ``fitness-weights serve`` on loopback with a real training job."""

import json
import shutil
import time
from pathlib import Path

import httpx
import pytest

from fitness_weights_api import ModelRegistry

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None or DRIVER is None, reason="no chromium and chromium-driver (.ci/run installs them)"
    ),
]
ROOT = Path(__file__).resolve().parents[1]
TRAIN = {"timesteps": 200_000, "n_envs": 8, "eval_trainees": 4, "policy": "AttnCQQXPolicy"}


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1100",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def _wait(until, timeout_s=90.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = until()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail("timed out")


def test_the_page_plots_a_running_job_takes_a_change_and_shows_its_log(api_servers, tmp_path, tiny_models):
    from selenium.webdriver.common.by import By

    home = tmp_path / "home"
    ModelRegistry(home / "registry").register(tiny_models["attn0"], training_config={}, activate=True)
    import optuna

    from fitness_weights_api.tuning_cli import open_storage

    study = optuna.create_study(study_name="a-study", storage=open_storage(None, home / "studies/a-study/journal.log"))

    def objective(trial):
        x = trial.suggest_float("x", 0.0, 1.0)
        for step in range(1, 4):
            trial.report(x * step, step * 4096)
        return x

    study.optimize(objective, n_trials=2)
    server = api_servers(home)
    browser = _browser()
    try:
        browser.get(f"{server.url}/ui")
        browser.find_element(By.ID, "token").send_keys(server.admin_token)
        browser.find_element(By.CSS_SELECTOR, "#token-form button").click()
        _wait(lambda: "a-study" in browser.find_element(By.ID, "studies").text)  # the home's tuning studies
        assert "2 complete" in browser.find_element(By.ID, "studies").text
        # start the job from the page's form; the page then follows it
        browser.find_element(By.CSS_SELECTOR, "#jobs-panel summary").click()
        for name, value in TRAIN.items():
            field = browser.find_element(By.CSS_SELECTOR, f"#start-form [name={name}]")
            if field.tag_name == "select":
                field.send_keys(value)
            else:
                field.clear()
                field.send_keys(str(value))
        browser.find_element(By.CSS_SELECTOR, "#start-form button").click()
        jobs = _wait(lambda: httpx.get(f"{server.url}/train", headers=server.auth, timeout=30).json())
        assert len(jobs) == 1 and jobs[0]["config"]["n_envs"] == TRAIN["n_envs"]
        assert jobs[0]["config"]["eval_trainees"] == TRAIN["eval_trainees"]
        job_id = jobs[0]["job_id"]
        _wait(lambda: browser.find_element(By.ID, "job-id").text == job_id[:8])

        def points():  # the markers of the reward chart
            return len(browser.find_elements(By.CSS_SELECTOR, "#chart-reward .scatterlayer .point"))

        _wait(lambda: points() >= 10)
        browser.find_element(By.ID, "param-name").send_keys("ent_coef")
        browser.find_element(By.ID, "param-value").send_keys("0.02")
        browser.find_element(By.CSS_SELECTOR, "#param-form button").click()
        _wait(lambda: "applied" in browser.find_element(By.ID, "param-history").text)
        history = browser.find_element(By.ID, "param-history").text
        assert "ent_coef" in history and "0.02" in history
        _wait(lambda: "live parameter ent_coef" in browser.find_element(By.ID, "log").text)
        assert "training {" in browser.find_element(By.ID, "log").text

        # the heatmaps of the latest checkpoint: held-out trainee 0 first, its target subjects outlined and named
        _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#heatmap-cq .heatmaplayer image"))
        _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#heatmap-qx .heatmaplayer image"))
        weights = httpx.get(f"{server.url}/train/{job_id}/weights?trainee=0", headers=server.auth, timeout=30).json()
        names = [s["name_en"] for s in httpx.get(f"{server.url}/catalog", timeout=30).json()["subjects"]]
        targets = weights["target_subjects"]
        ticks = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#heatmap-cq .ytick text")]
        assert ticks == [names[t] for t in targets]
        outlines = browser.find_elements(By.CSS_SELECTOR, "#heatmap-cq .shapelayer path")
        assert len(outlines) == len(targets)
        # a trainee typed in
        browser.find_element(By.CSS_SELECTOR, "input[name=who][value=typed]").click()
        typed = {"user_id": "typed-1", "age": 30, "gender": "female", "fitness_level": 0.4,
                 "current_qualities": [0.4, 0.5, 0.5, 0.4, 0.4], "target_subjects": [names[5], names[7]]}  # fmt: skip
        browser.find_element(By.ID, "profile").send_keys(json.dumps(typed))
        browser.find_element(By.CSS_SELECTOR, "#weights-form button").click()
        _wait(lambda: "typed-1" in browser.find_element(By.ID, "weights-source").text)
        _wait(lambda: [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#heatmap-cq .ytick text")]
              == [names[5], names[7]])  # fmt: skip
        browser.find_element(By.CSS_SELECTOR, "input[name=who][value=held-out]").click()
        browser.find_element(By.CSS_SELECTOR, "#weights-form button").click()
        _wait(lambda: "held-out 0" in browser.find_element(By.ID, "weights-source").text)

        # the study's trials: their curves, and the trial that became this job opens it
        study.set_user_attr("jobs", {"1": job_id})
        browser.find_element(By.CSS_SELECTOR, "#studies tbody tr").click()
        _wait(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#chart-study .scatterlayer .trace")) == 2)
        assert len(browser.find_elements(By.CSS_SELECTOR, "#chart-study .scatterlayer .trace .point")) == 6
        rows = browser.find_elements(By.CSS_SELECTOR, "#study-trials tbody tr")
        assert [row.get_attribute("data-trial") for row in rows] == ["1", "0"]
        assert rows[0].find_element(By.TAG_NAME, "button").text == f"job {job_id[:8]}" and "-" in rows[1].text
        browser.execute_script("$('job-panel').hidden = true; $('job-id').textContent = ''")
        rows[0].find_element(By.TAG_NAME, "button").click()
        _wait(lambda: browser.find_element(By.ID, "job-id").text == job_id[:8])
        assert browser.find_element(By.ID, "job-panel").is_displayed()
        _wait(lambda: "training {" in browser.find_element(By.ID, "log").text)  # the job's log, sent again

        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1400, min(int(height) + 20, 3000))  # the whole page in the screenshot
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(tmp_path / "dashboard.png"))
        if (ROOT / "docs").is_dir():
            shutil.copy(tmp_path / "dashboard.png", ROOT / "docs" / "dashboard.png")
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
        events = [json.loads(entry["message"])["message"] for entry in browser.get_log("performance")]
        urls = [e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"]
        assert urls and all(url.startswith((server.url, "data:", "blob:")) for url in urls), urls  # loopback only
    finally:
        browser.quit()
