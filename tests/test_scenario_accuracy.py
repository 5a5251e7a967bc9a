"""Scenario accuracy on the labelled prompt sets of ../shared/realdata, per set and per language.

The sets are for measurement only: nothing of them is fitted on or copied into rules or examples
(their licences forbid training or commercial use). Sources, from ../shared/realdata/README.md:
BELLE's Chinese eval set (LianjiaTech/BELLE, research use only), Chinese-LLaMA-Alpaca's example
prompts (ymcui/Chinese-LLaMA-Alpaca, Apache-2.0, academic use), the WizardLM test set
(nlpxucan/WizardLM, CC BY-NC 4.0), self-instruct's user-oriented set (yizhongw/self-instruct,
Apache-2.0, not for training) and MT-Bench (lm-sys/FastChat, Apache-2.0).

Each set's categories map onto our labels as that README proposes (a category spanning two
scenarios accepts either). Where a category does not say what a row asks, the row is labelled by
hand (HAND below, by the row's index; None leaves it out): self-instruct's categories are apps,
not tasks, so every row of it is; WizardLM's Writting, Ethics and Toxicity rows and a few others;
the Chinese-LLaMA-Alpaca rows whose file holds mixed tasks (GENERATION letters, poems; OQA and
ENTERTAINMENT recommendations). Each prompt is classified as a one-turn session by the default
rules and the shipped model. Run with -s to print the README's tables.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from chatpulse.behaviour.labelled import evaluate
from chatpulse.behaviour.scenario_model import scenario_model
from chatpulse.behaviour.scenario_rules import DEFAULT_RULES
from chatpulse.behaviour.scenarios import DEFAULT_LABELS, classify_prompts

from fixtures import REALDATA

CO, TR, MA, CR, EX, BU, WR, GU, IN, OT = DEFAULT_LABELS  # in the order test_scenarios pins
CODES = {"C": CO, "T": TR, "M": MA, "CR": CR, "E": EX, "B": BU, "W": WR, "G": GU, "I": IN, "O": OT}
Rows = list[tuple[str, set[str]]]


def _hand(spec: str) -> dict[int, set[str] | None]:
    """`index:codes;...` (codes comma-separated, X for a row left out) as {index: labels}."""
    out: dict[int, set[str] | None] = {}
    for item in filter(None, (part.strip() for part in spec.split(";"))):
        index, codes = item.split(":")
        out[int(index)] = None if codes.strip() == "X" else {CODES[code] for code in codes.split(",")}
    return out


WIZARDLM_HAND = _hand(
    """106:I,G;107:I,G;108:I,G;109:I,G;111:I,M;112:I,M;113:I,M;72:M,I;66:C,I,G;68:I,G;69:I,C;70:C,G,I;148:I,O;149:I,O;
150:I,O;151:I,O;152:I,O;153:O,CR;194:O;195:O;196:I,O;197:I,O;38:W,I;39:W,I;40:W,I;41:W,G;43:W,CR;45:W,G;46:W,CR;
51:W,G;52:W,G,B;53:W,B;54:W,CR,G;55:W,B,G;212:W,E;213:W,G;214:W,C;215:W,G;123:CR,T;129:I,G;"""
)
SELF_INSTRUCT_HAND = _hand(
    """0:W;1:W;2:W;3:W,E;4:W;5:B,W;6:B,W;7:W;8:X;9:CR,W;10:G,C;11:C;12:C;13:C;14:C;15:M;16:C,I;17:G,I;18:G;19:M;20:X;
21:W;22:W;23:C;24:W,B;25:W,B;26:G,I;27:C;28:E;29:W;30:G;31:E,I;32:W;33:W,I;34:G;35:G,I;36:I,E;37:I;38:C;39:C;
40:C;41:G;42:G,C;43:G;44:G,CR;45:I,E;46:G;47:G,I;48:G;49:CR;50:G;51:G,I;52:W,B;53:B,W;54:W;55:W,B;56:B,W;57:B;
58:W;59:W;60:W;61:W;62:W,CR;63:G,W;64:W;65:W;66:G;67:W;68:G,W;69:I;70:I;71:I;72:W;73:B;74:B;75:B;76:G,W;77:C,G;
78:C;79:W,CR;80:E;81:E,I;82:I,G;83:I;84:I,G;85:G,I;86:W,G;87:G;88:G,I;89:C;90:C;91:C,E;92:C;93:C;94:G,I;95:G;
96:C;97:W,E;98:E;99:W;100:T;101:W,E;102:E;103:G,W;104:G,I;105:G;106:G;107:G;108:G;109:G;110:G;111:G;112:G,I;
113:G;114:M;115:I;116:G;117:G;118:G;119:G;120:G;121:G;122:G,W;123:G,B;124:T;125:T,I;126:I,G;127:E;128:G;129:G;
130:G;131:G;132:G;133:M;134:M;135:X;136:G;137:I,E;138:G;139:I;140:M;141:M;142:M;143:M;144:M;145:I,E;146:I,E;
147:I;148:I;149:M;150:X;151:W,I;152:I;153:X;154:CR,W;155:W;156:W;157:E;158:E;159:E;160:E;161:W;162:E;163:E;
164:E;165:E;166:E;167:W;168:I,G;169:G,I;170:I;171:I;172:G;173:M,G;174:G,I;175:E,I;176:E;177:G;178:C;179:E;
180:G,I;181:E;182:X;183:E;184:E;185:X;186:CR;187:W;188:W;189:W;190:C;191:E;192:G,I;193:W;194:E;195:C;196:X;
197:E;198:G,I;199:E,CR;200:I;201:X;202:E,B;203:I;204:CR,W;205:C;206:W,CR;207:W,B;208:W,G;209:G;210:C;211:W;
212:E;213:E;214:G,W;215:G;216:B,W;217:X;218:X;219:B,W;220:W;221:G,I;222:I,E;223:W;224:E;225:E;226:C;227:C;
228:W,G;229:I;230:W;231:C;232:E;233:G;234:E;235:E;236:W;237:G;238:E;239:G;240:W;241:I,W;242:C;243:C;244:I;245:I;
246:W;247:E;248:G;249:G;250:I;251:I;"""
)
ALPACA_HAND = _hand(
    """11:C,I;12:C,I;18:C,I;19:C,I;22:M,I;26:M,G;49:T,I;54:T,I;60:B;61:W,B;62:B;63:W;64:W;65:W,B;66:W;67:G,W;68:W;69:B;
70:W;71:W;72:CR;73:W;74:CR;75:W;76:B;77:W;78:W;79:B;82:G;99:I,G;121:W,CR;126:G;132:G;134:G;135:G;136:G;139:G;
140:I;141:I,G;142:I;143:G;144:G;145:G;146:I;147:G;148:G;149:I,G;150:G;151:G;152:I,G;153:I;154:I;155:I;156:G;
157:I;158:CR,I;159:I;171:O,W;172:O,I;178:O,I;"""
)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def belle(realdata: Path) -> Rows:
    """The d6c768f4 file, which still labels its 39 translation rows (the newest folds them into rewrite)."""
    mapping = {
        "code": {CO},
        "math": {MA},
        "translation": {TR},
        "rewrite": {WR},
        "generation": {WR, CR},
        "brainstorming": {GU},
        "open qa": {IN},
        "summarization": {EX},
        "extract": {EX},
    }  # closed qa (reading comprehension) and classification are left out, as the README proposes
    rows = _lines(realdata / "belle_eval_set_d6c768f4_with_translation.json")
    return [(row["question"], mapping[row["class"]]) for row in rows if row["class"] in mapping]


def alpaca(realdata: Path) -> Rows:
    mapping = {
        "CODE": {CO},
        "REASONING": {MA},
        "TRANSLATION": {TR},
        "GENERATION": {WR, BU},
        "QA": {IN},
        "LITERATURE": {IN},
        "ENTERTAINMENT": {IN},
        "OQA": {GU},
        "ETHICS": {OT},
    }  # DIALOGUE is multi-turn and mixed: left out
    rows: Rows = []
    for name, labels in mapping.items():
        text = (realdata / "chinese_llama_alpaca_examples" / f"{name}.md").read_text(encoding="utf-8")
        prompts = {int(n): p for n, p in re.findall(r"^\*\*(\d+)、(.+?)\*\*\s*$", text, re.M)}
        for n, prompt in re.findall(r"^\|\s*(\d+)\s*\|\s*(.*?)\s*\|", text, re.M):
            prompts.setdefault(int(n), prompt.replace("<br>", "\n").replace("<br/>", "\n"))
        assert sorted(prompts) == list(range(1, 21)), name
        rows += [(prompts[n], labels) for n in range(1, 21)]
    return [(prompt, ALPACA_HAND.get(i, labels)) for i, (prompt, labels) in enumerate(rows)]


def wizardlm(realdata: Path) -> Rows:
    mapping = {
        "Code Generation": {CO},
        "Code Debug": {CO},
        "Math": {MA},
        "Reasoning": {MA},
        "Multilingual": {TR},
        "Roleplay": {CR},
        "Writting": {WR},
        "Academic Writing": {WR},
        "Computer Science": {IN, CO},
        "Ethics": {OT},
        "Toxicity": {OT},
    } | {
        skill: {IN}
        for skill in (
            "Common-Sense",
            "Counterfactual",
            "TruthfulQA",
            "Biology",
            "Technology",
            "Sport",
            "Law",
            "Medicine",
            "Literature",
            "Entertainment",
            "Art",
            "Music",
            "Economy",
            "Physics",
            "History",
            "Chemistry",
            "Philosophy",
        )
    }  # Complex Format mixes code, maths and spreadsheets: left out
    rows = _lines(realdata / "WizardLM_testset.jsonl")
    return [(r["Instruction"], WIZARDLM_HAND.get(r["idx"], mapping[r["Skill"]])) for r in rows if r["Skill"] in mapping]


def self_instruct(realdata: Path) -> Rows:
    """The prompt is the instruction plus its first instance's input."""
    rows = _lines(realdata / "self_instruct_user_oriented_instructions.jsonl")
    assert len(rows) == len(SELF_INSTRUCT_HAND)
    out: Rows = []
    for index, row in enumerate(rows):
        if (labels := SELF_INSTRUCT_HAND[index]) is not None:
            given = row["instances"][0]["input"] if row["instances"] else ""
            out.append((row["instruction"] + (f"\n{given}" if given else ""), labels))
    return out


def mt_bench(realdata: Path) -> Rows:
    """First turns; MT-Bench groups by subject, so a category accepts each label that covers it."""
    mapping = {
        "writing": {WR, BU, CR},
        "roleplay": {CR},
        "reasoning": {MA},
        "math": {MA},
        "coding": {CO},
        "extraction": {EX},
        "stem": {IN, GU},
        "humanities": {IN, GU},
    }
    return [(row["turns"][0], mapping[row["category"]]) for row in _lines(realdata / "mt_bench_question.jsonl")]


# name, language, reader, rows, floor (a little below the accuracy measured when the model was shipped)
SETS: list[tuple[str, str, Callable[[Path], Rows], int, float]] = [
    ("BELLE eval set", "zh", belle, 883, 0.80),
    ("Chinese-LLaMA-Alpaca examples", "zh", alpaca, 180, 0.87),
    ("WizardLM test set", "en", wizardlm, 206, 0.82),
    ("self-instruct user-oriented", "en", self_instruct, 241, 0.80),
    ("MT-Bench", "en", mt_bench, 80, 0.81),
]
SHORT = {
    CO: "code",
    TR: "transl",
    MA: "math",
    CR: "creative",
    EX: "extract",
    BU: "business",
    WR: "writing",
    GU: "guidance",
    IN: "info",
    OT: "other",
}


@pytest.fixture(scope="module")
def results() -> dict[str, tuple[str, Rows, np.ndarray]]:
    """Per set: its language, rows and predicted labels (classified once for the module's tests)."""
    if not REALDATA.is_dir():
        pytest.skip(f"real public data not found at {REALDATA}")
    realdata, model = REALDATA, scenario_model()
    out = {}
    for name, language, reader, count, _ in SETS:
        rows = reader(realdata)
        assert len(rows) == count, name
        predicted = classify_prompts([prompt for prompt, _ in rows], DEFAULT_RULES, model).scenario
        out[name] = (language, rows, predicted)
    return out


def _accuracy(rows: Rows, predicted: np.ndarray) -> float:
    return float(np.mean([guess in labels for (_, labels), guess in zip(rows, predicted, strict=True)]))


@pytest.mark.parametrize(("name", "floor"), [(name, floor) for name, *_, floor in SETS])
def test_accuracy_per_set_stays_above_its_floor(results, name: str, floor: float):
    _, rows, predicted = results[name]
    assert _accuracy(rows, predicted) >= floor


def test_accuracy_per_language_and_readme_tables(results):
    lines = ["| set | language | prompts | accuracy |", "|---|---|---|---|"]
    by_language: dict[str, list[bool]] = {}
    for name, (language, rows, predicted) in results.items():
        right = [guess in labels for (_, labels), guess in zip(rows, predicted, strict=True)]
        by_language.setdefault(language, []).extend(right)
        lines.append(f"| {name} | {language} | {len(rows)} | {np.mean(right):.3f} |")
    for language, right in by_language.items():
        lines.append(f"| all {language} sets | {language} | {len(right)} | **{np.mean(right):.3f}** |")
    print("\n" + "\n".join(lines))
    for name, (_, rows, predicted) in results.items():
        scored = evaluate([sorted(labels) for _, labels in rows], [str(p) for p in predicted])
        confusion = scored.confusion.rename(index=SHORT, columns=SHORT)
        table = [f"| {name} | " + " | ".join(confusion.columns) + " |", "|---" * (len(confusion.columns) + 1) + "|"]
        for truth, counts in confusion.iterrows():
            cells = [f"**{n}**" if truth == column else (str(n) if n else "") for column, n in counts.items()]
            table.append(f"| {truth} | " + " | ".join(cells) + " |")
        print(f"\n{name} (accuracy {scored.accuracy:.3f}; rows: true label, columns: predicted)\n" + "\n".join(table))
    # the target (issue 15), met by the shipped model: 0.820 and 0.816 (see the README)
    assert np.mean(by_language["zh"]) >= 0.80 and np.mean(by_language["en"]) >= 0.80
