"""A synthetic city: the datasets each department would deliver, deterministic for a seed.

Everything is drawn with NumPy and assembled with Polars, column at a time (1M persons and 200k
enterprises take seconds, not minutes). Proportions come from real figures (district populations of
the 2020 census, surname frequencies — see ``data/SOURCE.md``) and the real divisions; the records
themselves are made up. Every dataset is written as its *source department* delivers it, with
defects at a configurable rate — missing values, bad check digits, stale addresses, departments
disagreeing — so that the lake's quality rules and 一数一源 have something real to catch.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from stdnum import numdb

from shgov.core.regions.service import RegionIndex, shape_bounds

ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
ID_CHECK = np.array(list("10X98765432"))
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = np.array([pow(3, i, 31) for i in range(17)], dtype=np.int64)
ORG_WEIGHTS = np.array([3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
TODAY = date(2026, 11, 1)  # the reference day of the synthetic city (fixed, so output is deterministic)
EPOCH = date(1970, 1, 1)

GIVEN_CHARS = list(
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红辉建文斌宇浩凯鑫鹏欣怡婷雪琳晨阳佳"
    "一子梓涵诗雨轩思博睿泽宁嘉俊晓燕慧颖倩海波宏志国庆春兰凤梅云龙飞彬瑞琪悦然昊天逸航"
)
BRAND_WORDS = list("申浦沪城海信达华兴瑞恒联创科泰鑫源康盛启航智云汇通金鼎博远安嘉宏伟新和美亿德丰隆")
INDUSTRY_SUFFIX = {
    "A": "农业科技",
    "B": "矿业",
    "C": "制造",
    "D": "能源",
    "E": "建设工程",
    "F": "贸易",
    "G": "物流",
    "H": "餐饮管理",
    "I": "信息技术",
    "J": "投资管理",
    "K": "置业",
    "L": "商务咨询",
    "M": "科技",
    "N": "环境工程",
    "O": "家政服务",
    "P": "教育科技",
    "Q": "医疗管理",
    "R": "文化传媒",
    "S": "社会服务",
}
# GB/T 4754-2017 sections, weighted like the enterprise register of a service-led megacity.
INDUSTRY_WEIGHTS = {
    "A": 0.5,
    "B": 0.05,
    "C": 8.0,
    "D": 0.4,
    "E": 5.0,
    "F": 30.0,
    "G": 4.0,
    "H": 4.0,
    "I": 9.0,
    "J": 3.0,
    "K": 2.5,
    "L": 16.0,
    "M": 11.0,
    "N": 1.5,
    "O": 2.0,
    "P": 1.0,
    "Q": 0.6,
    "R": 1.8,
    "S": 0.15,
}
HOUSEHOLD_SIZES = (np.array([1, 2, 3, 4, 5, 6]), np.array([0.25, 0.32, 0.24, 0.11, 0.06, 0.02]))
SCHOOLS = np.array(["复旦大学", "上海交通大学", "同济大学", "华东师范大学", "上海大学"])
EDUCATION = np.array(["小学", "初中", "高中", "大学专科", "大学本科", "研究生"])
# Birth places outside Shanghai, weighted towards the provinces most residents come from.
OTHER_AREAS = {
    "340202": 4,
    "341002": 2,
    "320102": 5,
    "320106": 4,
    "321002": 2,
    "410102": 4,
    "410103": 2,
    "510104": 3,
    "360102": 3,
    "420102": 3,
    "370102": 3,
    "330102": 3,
    "330203": 2,
    "350102": 2,
    "440103": 1,
    "610102": 1,
    "230102": 1,
    "130102": 1,
    "110101": 1,
    "120101": 1,
}
CENTRAL_SHANGHAI = ("310101", "310104", "310105", "310106", "310107", "310109", "310110")


@dataclass(frozen=True)
class CityConfig:
    """What to generate."""

    persons: int = 20_000
    enterprises: int = 4_000
    seed: int = 2026
    defect_rate: float = 0.02
    shanghai_born: float = 0.58


@dataclass
class Delivery:
    """One department's dataset."""

    department_code: str
    resource: str
    frame: pl.DataFrame
    description: str


@dataclass
class SyntheticCity:
    """Every delivery of the generated city."""

    config: CityConfig
    deliveries: list[Delivery] = field(default_factory=list)

    def get(self, resource: str) -> pl.DataFrame:
        """The frame of ``resource``."""
        return next(d.frame for d in self.deliveries if d.resource == resource)

    def write(self, folder: Path, fmt: str = "parquet") -> list[Path]:
        """Write each delivery as ``<folder>/<department>/<resource>.<fmt>`` plus a ``manifest.json``."""
        if fmt not in ("parquet", "csv"):
            raise ValueError("format must be parquet or csv")
        written: list[Path] = []
        manifest: list[dict[str, Any]] = []
        for delivery in self.deliveries:
            target = folder / delivery.department_code / f"{delivery.resource}.{fmt}"
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            if fmt == "parquet":
                delivery.frame.write_parquet(tmp, compression="zstd")
            else:
                delivery.frame.write_csv(tmp)
            tmp.replace(target)
            written.append(target)
            manifest.append(
                {
                    "department": delivery.department_code,
                    "resource": delivery.resource,
                    "file": str(target.relative_to(folder)),
                    "rows": delivery.frame.height,
                    "description": delivery.description,
                }
            )
        meta = {"config": vars(self.config), "deliveries": manifest}
        (folder / "manifest.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
        return written


def _read_csv(name: str) -> list[dict[str, str]]:
    text = (resources.files("shgov.lake") / "data" / name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def _area_ranges(codes: list[str]) -> dict[str, tuple[int, int]]:
    """The years in which each area code was in use, from python-stdnum's table (as its validator sees them)."""
    table = numdb.get("cn/loc")
    ranges: dict[str, tuple[int, int]] = {}
    for code in codes:
        info = {k: v for _part, props in table.info(code) for k, v in props.items()}
        county = info.get("county", "")
        start, end = 0, 9999
        if county.startswith("["):
            span = county[1:].split("]", 1)[0]
            first, _, last = span.partition("-")
            start, end = int(first or 0), int(last or 9999)
        if county:
            ranges[code] = (start, end)
    return ranges


def id_check_chars(body: np.ndarray) -> np.ndarray:
    """GB 11643 check characters of an (n, 17) array of digits."""
    return ID_CHECK[(body @ ID_WEIGHTS) % 11]


def _digits(strings: np.ndarray, width: int) -> np.ndarray:
    raw = np.frombuffer(strings.astype(f"S{width}").tobytes(), dtype=np.uint8).reshape(-1, width)
    return (raw - ord("0")).astype(np.int64)


def _choose(rng: np.random.Generator, values: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    return values[rng.choice(len(values), size=size, p=weights / weights.sum())]


def _ages(rng: np.random.Generator, n: int) -> np.ndarray:
    # Age groups of Shanghai's 2020 residents: 0–14 9.8 %, 15–59 66.8 %, 60+ 23.4 %.
    groups = rng.choice(3, size=n, p=[0.098, 0.668, 0.234])
    low = np.array([0, 15, 60])[groups]
    high = np.array([15, 60, 100])[groups]
    ages: np.ndarray = low + (rng.random(n) ** np.where(groups == 2, 1.6, 1.0)) * (high - low)
    return ages


class _Places:
    """Communities of the city with district weights for sampling addresses."""

    def __init__(self, index: RegionIndex) -> None:
        population = {row["code"]: int(row["population_2020"]) for row in _read_csv("district_population_2020.csv")}
        communities = [
            r for r in index.regions.values() if r.level == "community" and "虚拟" not in r.name and r.parent_code
        ]
        communities.sort(key=lambda r: r.code)
        self.community_code = np.array([c.code for c in communities])
        self.community_name = np.array([c.name for c in communities])
        self.township_code = np.array([c.parent_code for c in communities])
        self.township_name = np.array([index.regions[str(c.parent_code)].name for c in communities])
        self.district_code = np.array([c.code[:6] for c in communities])
        self.district_name = np.array([index.regions[c.code[:6]].name for c in communities])
        stems = [c.name.removesuffix("居委会").removesuffix("村委会").removesuffix("社区") for c in communities]
        self.stem = np.array(stems)
        per_district = {code: int((self.district_code == code).sum()) for code in population}
        weights = np.array([population.get(d, 0) / max(per_district.get(d, 1), 1) for d in self.district_code], float)
        if weights.sum() == 0:  # another city's divisions: weigh communities equally
            weights = np.ones(len(communities))
        self.weights = weights / weights.sum()
        self.index = index
        anchors = self._anchors(index)
        self.lng: np.ndarray | None = anchors[0]
        self.lat: np.ndarray | None = anchors[1]

    def _anchors(self, index: RegionIndex) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
        """A made-up centre for every community: townships scattered over their district's outline,
        communities clustered around their township. Fixed for a set of divisions (not per seed), so
        that the city's geography stays put between runs; ``None`` when no outlines are loaded."""
        if not index.boundaries:
            return None, None
        rng = np.random.default_rng(4754)
        townships, township_of = np.unique(self.township_code, return_inverse=True)
        t_district = np.array([t[:6] for t in townships])
        t_lng, t_lat = self._inside(index, rng, t_district, None, None, 0.0)
        lng, lat = self._inside(index, rng, self.district_code, t_lng[township_of], t_lat[township_of], 0.012)
        return lng, lat

    @staticmethod
    def _inside(
        index: RegionIndex,
        rng: np.random.Generator,
        district: np.ndarray,
        around_lng: np.ndarray | None,
        around_lat: np.ndarray | None,
        spread: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Points inside each row's district: uniform over the outline's bounds, or normally spread
        around a given point (falling back to that point after 30 misses)."""
        n = len(district)
        lng: np.ndarray = np.zeros(n)
        lat: np.ndarray = np.zeros(n)
        todo = np.arange(n)
        outlines = index.boundaries
        bounds = {code: shape_bounds(outlines[code]) for code in np.unique(district) if code in outlines}
        for _ in range(30):
            if not len(todo):
                break
            if around_lng is None or around_lat is None:
                box = np.array([bounds.get(d, (0.0, 0.0, 0.0, 0.0)) for d in district[todo]])
                x = box[:, 0] + rng.random(len(todo)) * (box[:, 2] - box[:, 0])
                y = box[:, 1] + rng.random(len(todo)) * (box[:, 3] - box[:, 1])
            else:
                x = around_lng[todo] + rng.normal(0, spread, len(todo))
                y = around_lat[todo] + rng.normal(0, spread, len(todo))
            found, approximate = index.districts_at(x, y)
            ok = (found == district[todo]) & ~approximate
            lng[todo[ok]], lat[todo[ok]] = x[ok], y[ok]
            todo = todo[~ok]
        if len(todo) and around_lng is not None and around_lat is not None:
            lng[todo], lat[todo] = around_lng[todo], around_lat[todo]
        return lng, lat

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.choice(len(self.community_code), size=n, p=self.weights)

    def points(self, rng: np.random.Generator, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """WGS-84 coordinates of addresses in communities ``idx``: within a few hundred metres of the
        community's centre, and inside its district (else at the centre itself)."""
        if self.lng is None or self.lat is None:
            raise ValueError("no district outlines are loaded, so addresses cannot have coordinates")
        x = self.lng[idx] + rng.normal(0, 0.0025, len(idx))
        y = self.lat[idx] + rng.normal(0, 0.0022, len(idx))
        inside = self.index.within(self.district_code[idx], x, y)
        x[~inside], y[~inside] = self.lng[idx][~inside], self.lat[idx][~inside]
        return np.round(x, 6), np.round(y, 6)


def _address(places: _Places, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    number = rng.integers(1, 400, len(idx)).astype(str)
    room = (rng.integers(1, 30, len(idx)) * 100 + rng.integers(1, 6, len(idx))).astype(str)
    parts = [places.district_name[idx], places.township_name[idx], places.stem[idx], number, "号", room, "室"]
    out: np.ndarray = parts[0]
    for part in parts[1:]:
        out = np.char.add(out, part)
    return out


def _names(rng: np.random.Generator, n: int) -> np.ndarray:
    surnames = _read_csv("surnames.csv")
    family = _choose(
        rng, np.array([s["surname"] for s in surnames]), np.array([float(s["weight"]) for s in surnames]), n
    )
    chars = np.array(GIVEN_CHARS)
    first = chars[rng.integers(0, len(chars), n)]
    second = chars[rng.integers(0, len(chars), n)]
    two = rng.random(n) < 0.72
    return np.char.add(family, np.where(two, np.char.add(first, second), first))


def _unique_ids(rng: np.random.Generator, area: np.ndarray, born: np.ndarray, male: np.ndarray) -> np.ndarray:
    """身份证号 with unique sequence numbers (odd for men), consistent with birth date and sex."""
    n = len(area)
    birth = _ymd(born)
    seq = rng.integers(0, 500, n) * 2 + male.astype(np.int64)
    while True:
        body = np.char.add(np.char.add(area, birth), np.char.zfill(seq.astype(str), 3))
        _, first_index = np.unique(body, return_index=True)
        dup_mask = np.ones(n, dtype=bool)
        dup_mask[first_index] = False
        if not dup_mask.any():
            break
        seq[dup_mask] = rng.integers(0, 500, int(dup_mask.sum())) * 2 + male[dup_mask].astype(np.int64)
    return np.char.add(body, id_check_chars(_digits(body, 17)))


def _ymd(days: np.ndarray) -> np.ndarray:
    as_dates = days.astype("datetime64[D]")
    years = as_dates.astype("datetime64[Y]").astype(int) + 1970
    months = (as_dates.astype("datetime64[M]").astype(int) % 12) + 1
    mday = (as_dates - as_dates.astype("datetime64[M]")).astype(int) + 1
    value = years * 10000 + months * 100 + mday
    text: np.ndarray = value.astype(str)
    return text


def _years(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[D]").astype("datetime64[Y]").astype(int) + 1970


def _birth_areas(rng: np.random.Generator, config: CityConfig, district: np.ndarray, year: np.ndarray) -> np.ndarray:
    n = len(district)
    ranges = _area_ranges(sorted(set(district.tolist()) | set(OTHER_AREAS) | set(CENTRAL_SHANGHAI)))
    area = district.copy()
    valid_local = _vector_valid(district, year, ranges)
    # python-stdnum accepts an area code only for birth years in which it existed; where the code of
    # the home district is younger than the person, an old central district stands in.
    always = np.array([c for c in ranges if ranges[c] == (0, 9999)])
    central = np.array([c for c in CENTRAL_SHANGHAI if c in always])
    area[~valid_local] = central[rng.integers(0, len(central), int((~valid_local).sum()))]
    others = np.array([c for c in OTHER_AREAS if c in ranges])
    migrant = np.flatnonzero(rng.random(n) >= config.shanghai_born)
    picked = _choose(rng, others, np.array([OTHER_AREAS[c] for c in others], float), len(migrant))
    too_young = ~_vector_valid(picked, year[migrant], ranges)
    picked[too_young] = always[rng.integers(0, len(always), int(too_young.sum()))]
    area[migrant] = picked
    return area


def _vector_valid(codes: np.ndarray, year: np.ndarray, ranges: dict[str, tuple[int, int]]) -> np.ndarray:
    keys = np.array(sorted(ranges))
    start = np.array([ranges[k][0] for k in keys])
    end = np.array([ranges[k][1] for k in keys])
    pos = np.searchsorted(keys, codes)
    pos = np.clip(pos, 0, len(keys) - 1)
    known = keys[pos] == codes
    valid: np.ndarray = known & (start[pos] <= year) & (year <= end[pos])
    return valid


def _org_codes(rng: np.random.Generator, n: int) -> np.ndarray:
    """9-character organisation codes (GB 11714: 8 digits and a check character)."""
    body = rng.integers(0, 10, (n, 8))
    check = 11 - (body @ ORG_WEIGHTS) % 11
    chars = np.where(check == 10, "X", np.where(check == 11, "0", check.astype(str)))
    return np.char.add(_join_digits(body), chars)


def _join_digits(matrix: np.ndarray) -> np.ndarray:
    as_bytes = (matrix + ord("0")).astype(np.uint8)
    width = matrix.shape[1]
    return np.frombuffer(as_bytes.tobytes(), dtype=f"S{width}").astype(f"U{width}")


def credit_codes(rng: np.random.Generator, district: np.ndarray) -> np.ndarray:
    """统一社会信用代码 of enterprises registered with 市场监管 (9), type enterprise (1), in ``district``."""
    body = np.char.add(np.char.add("91", district), _org_codes(rng, len(district)))
    values = np.vectorize(USCC_ALPHABET.index, otypes=[np.int64])
    as_matrix = np.frombuffer(body.astype("S17").tobytes(), dtype="S1").reshape(-1, 17)
    numeric = values(as_matrix.astype(str))
    check = (31 - (numeric @ USCC_WEIGHTS) % 31) % 31
    return np.char.add(body, np.array(list(USCC_ALPHABET))[check])


def _stamp(value: str, n: int) -> pl.Series:
    """A column of one UTC timestamp: when the department's system exported the row."""
    return pl.Series(np.full(n, np.datetime64(value, "us"))).dt.replace_time_zone("UTC")


def _corrupt_check(rng: np.random.Generator, values: np.ndarray, rate: float) -> np.ndarray:
    """Replace the last character of a share of ``values`` with a wrong one (a typing error)."""
    out = values.copy()
    hit = np.flatnonzero(rng.random(len(values)) < rate)
    for i in hit:
        last = out[i][-1]
        out[i] = out[i][:-1] + ("1" if last != "1" else "2")
    return out


def _null_some(rng: np.random.Generator, frame: pl.DataFrame, column: str, rate: float) -> pl.DataFrame:
    mask = pl.Series(rng.random(frame.height) < rate)
    return frame.with_columns(pl.when(mask).then(None).otherwise(pl.col(column)).alias(column))


def generate(index: RegionIndex, config: CityConfig, progress: Callable[[str], None] | None = None) -> SyntheticCity:
    """Generate the city described by ``config`` over the divisions in ``index``."""
    step = progress or (lambda _msg: None)
    rng = np.random.default_rng(config.seed)
    places = _Places(index)
    n = config.persons
    r = config.defect_rate
    city = SyntheticCity(config)
    today_days = (TODAY - EPOCH).days

    # -- persons and households ---------------------------------------------------------------------
    step("persons")
    ages = _ages(rng, n)
    born = (today_days - ages * 365.25 - rng.integers(0, 365, n)).astype(np.int64)
    male = rng.random(n) < 0.518
    sizes = _choose(rng, *HOUSEHOLD_SIZES, n)
    household = np.repeat(np.arange(n), sizes)[:n]
    # People of one household live together; the oldest member is the head.
    order = np.lexsort((-ages, household))
    born, male, ages = born[order], male[order], ages[order]
    first_of_household = np.r_[True, household[1:] != household[:-1]]
    home = places.sample(rng, int(household.max()) + 1)[household]
    year = _years(born)
    area = _birth_areas(rng, config, places.district_code[home], year)
    ids = _unique_ids(rng, area, born, male)
    names = _names(rng, n)
    relation = np.where(first_of_household, "户主", np.where(ages >= 18, "配偶", "子女"))
    second = np.r_[False, first_of_household[:-1]]
    relation = np.where(~first_of_household & ~second & (ages >= 18), "其他", relation)
    adult = ages >= 20
    p = rng.random(n)
    marital = np.where(
        ~adult,
        "未婚",
        np.where(
            ages < 30,
            np.where(p < 0.45, "已婚", "未婚"),
            np.where(
                ages < 60,
                np.select([p < 0.86, p < 0.93], ["已婚", "离婚"], "未婚"),
                np.select([p < 0.78, p < 0.95], ["已婚", "丧偶"], "离婚"),
            ),
        ),
    )
    head_index = np.maximum.accumulate(np.where(first_of_household, np.arange(n), 0))
    is_couple = (relation == "配偶") & (marital == "已婚") & (marital[head_index] == "已婚")
    spouse = np.full(n, "", dtype=object)
    spouse[is_couple] = ids[head_index[is_couple]]
    spouse[head_index[is_couple]] = ids[is_couple]
    edu_level = np.clip((rng.normal(3.2, 1.3, n) - np.where(ages > 60, 1.2, 0)).round(), 0, 5).astype(int)
    edu_level = np.minimum(edu_level, np.clip(((ages - 6) // 3).astype(int), 0, 5))
    education = np.where(ages < 7, "学龄前", EDUCATION[edu_level])
    retire_age = np.where(male, 60, 55)
    employment = np.select(
        [ages < 22, ages >= retire_age, rng.random(n) < 0.06],
        ["在学", "退休", "失业"],
        "就业",
    )
    insurance = np.select(
        [employment == "就业", employment == "退休", rng.random(n) < 0.9],
        ["城镇职工", "城镇职工", "城乡居民"],
        "未参保",
    )
    address = _address(places, home, rng)
    household_no = np.char.add("HH", np.char.zfill(household.astype(str), 9))
    birth_iso = born.astype("datetime64[D]")

    population = pl.DataFrame(
        {
            "id_number": ids,
            "name": names,
            "sex": np.where(male, "男", "女"),
            "birth_date": birth_iso,
            "household_no": household_no,
            "relation": relation,
            "district_code": places.district_code[home],
            "township_code": places.township_code[home],
            "community_code": places.community_code[home],
            "address": address,
            "marital_status": marital,
            "updated_at": _stamp("2026-10-31T20:00:00", n),
        }
    )
    # Defects in 公安's delivery: a few mistyped ID numbers.
    population = population.with_columns(pl.Series("id_number", _corrupt_check(rng, ids, r / 4)))
    # 公安's marital status lags behind 民政's for a share of people.
    stale_marital = rng.random(n) < r
    population = population.with_columns(
        pl.Series("marital_status", np.where(stale_marital & (marital == "已婚"), "未婚", marital))
    )
    city.deliveries.append(Delivery("310000.ga", "population", population, "户籍人口信息 (公安)"))

    # -- 民政: marriages ----------------------------------------------------------------------------------
    step("marriages")
    married = np.flatnonzero(marital != "未婚")
    registered = born[married] + ((22 + rng.random(len(married)) * 10) * 365.25).astype(np.int64)
    registered = np.minimum(registered, today_days - 1)
    marriages = pl.DataFrame(
        {
            "id_number": ids[married],
            "name": names[married],
            "marital_status": marital[married],
            "spouse_id_number": spouse[married].astype(str),
            "registered_on": registered.astype("datetime64[D]"),
            "updated_at": _stamp("2026-10-30T18:00:00", len(married)),
        }
    ).with_columns(
        pl.when(pl.col("spouse_id_number") == "")
        .then(None)
        .otherwise(pl.col("spouse_id_number"))
        .alias("spouse_id_number")
    )
    city.deliveries.append(Delivery("310000.mz", "marriages", marriages, "婚姻登记信息 (民政)"))

    # -- 卫健: births --------------------------------------------------------------------------------------
    step("births")
    children = np.flatnonzero((relation == "子女") & (ages < 18))
    mother = head_index[children]
    births = pl.DataFrame(
        {
            "child_id_number": ids[children],
            "child_name": names[children],
            "birth_date": birth_iso[children],
            "sex": np.where(male[children], "男", "女"),
            "parent_id_number": ids[mother],
            "birth_place": np.char.add(places.district_name[home[children]], "妇幼保健院"),
            "updated_at": _stamp("2026-10-29T12:00:00", len(children)),
        }
    )
    city.deliveries.append(Delivery("310000.wj", "births", births, "出生医学证明信息 (卫健)"))

    # -- 人社: employment and social insurance --------------------------------------------------------------
    step("employment")
    working_age = np.flatnonzero(ages >= 16)
    stale = rng.random(len(working_age)) < r * 2
    moved = places.sample(rng, int(stale.sum()))
    rs_home = home[working_age].copy()
    rs_address = address[working_age].copy()
    rs_address[stale] = _address(places, moved, rng)
    rs_home[stale] = moved
    employment_frame = pl.DataFrame(
        {
            "id_number": _corrupt_check(rng, ids[working_age], r / 4),
            "name": names[working_age],
            "employment_status": employment[working_age],
            "insurance_type": insurance[working_age],
            "education": education[working_age],
            "address": rs_address,
            "updated_at": _stamp("2026-10-28T09:00:00", len(working_age)),
        }
    )
    employment_frame = _null_some(rng, employment_frame, "education", r)
    city.deliveries.append(Delivery("310000.rs", "employment", employment_frame, "就业与社保参保信息 (人社)"))

    # -- 市场监管 and 税务: enterprises --------------------------------------------------------------------------
    step("enterprises")
    m = config.enterprises
    reg_place = places.sample(rng, m)
    district = places.district_code[reg_place]
    uscc = credit_codes(rng, district)
    _, first_index = np.unique(uscc, return_index=True)
    keep = np.zeros(m, dtype=bool)
    keep[first_index] = True
    uscc, reg_place, district = uscc[keep], reg_place[keep], district[keep]
    m = len(uscc)
    sections = np.array(list(INDUSTRY_WEIGHTS))
    industry = _choose(rng, sections, np.array(list(INDUSTRY_WEIGHTS.values())), m)
    brand = np.char.add(
        np.array(BRAND_WORDS)[rng.integers(0, len(BRAND_WORDS), m)],
        np.array(BRAND_WORDS)[rng.integers(0, len(BRAND_WORDS), m)],
    )
    suffix = np.array([INDUSTRY_SUFFIX[s] for s in sections])[np.searchsorted(sections, industry)]
    serial = np.char.zfill(np.arange(m).astype(str), 5)
    ent_names = np.char.add(np.char.add(np.char.add(np.char.add("上海", brand), suffix), serial), "有限公司")
    adults = np.flatnonzero((ages >= 22) & (ages < 75))
    legal = adults[rng.integers(0, len(adults), m)]
    capital_yuan = np.round(np.exp(rng.normal(np.log(1_000_000), 1.4, m)) / 10_000) * 10_000
    employees = np.maximum(1, np.exp(rng.normal(2.2, 1.3, m))).astype(np.int64)
    established = today_days - (np.exp(rng.normal(np.log(2500), 0.9, m))).astype(np.int64)
    ent_address = _address(places, reg_place, rng)
    enterprises = pl.DataFrame(
        {
            "credit_code": _corrupt_check(rng, uscc, r / 4),
            "name": ent_names,
            "industry_section": industry,
            "registered_capital_fen": (capital_yuan * 100).astype(np.int64),
            "legal_representative_id": ids[legal],
            "legal_representative_name": names[legal],
            "district_code": district,
            "address": ent_address,
            "established_on": established.astype("datetime64[D]"),
            "status": np.where(rng.random(m) < 0.93, "存续", "注销"),
            "updated_at": _stamp("2026-10-31T22:00:00", m),
        }
    )
    enterprises = _null_some(rng, enterprises, "legal_representative_id", r / 2)
    city.deliveries.append(Delivery("310000.sc", "enterprises", enterprises, "企业登记信息 (市场监管)"))

    reported = np.where(
        rng.random(m) < r, np.maximum(1, (employees * rng.uniform(0.5, 1.5, m)).astype(np.int64)), employees
    )
    tax = pl.DataFrame(
        {
            "credit_code": uscc,
            "name": ent_names,
            "tax_status": np.where(rng.random(m) < 0.95, "正常", "非正常"),
            "employees": reported,
            "updated_at": _stamp("2026-10-31T23:00:00", m),
        }
    )
    city.deliveries.append(Delivery("310000.swj", "tax_registrations", tax, "税务登记信息 (税务)"))

    # -- e-licences -------------------------------------------------------------------------------------
    step("licences")
    city.deliveries.extend(
        _licences(
            rng,
            ids,
            names,
            born,
            ages,
            marital,
            first_of_household,
            household_no,
            insurance,
            children,
            uscc,
            ent_names,
            industry,
            established,
            today_days,
        )
    )

    # -- 规划资源: the standard addresses, geocoded ------------------------------------------------------
    if places.lng is not None:
        step("addresses")
        known = pl.concat(
            [
                population.select("address", pl.Series("place", home)),
                employment_frame.filter(pl.Series(stale)).select("address", pl.Series("place", moved)),
                enterprises.select("address", pl.Series("place", reg_place)),
            ]
        ).unique("address", keep="first", maintain_order=True)
        texts, where = known["address"], known["place"].to_numpy()
        lng, lat = places.points(rng, where)
        # Defects: a few addresses not surveyed yet, a few pairs typed the wrong way round.
        unsurveyed = rng.random(len(texts)) < r / 2
        swapped = ~unsurveyed & (rng.random(len(texts)) < r / 4)
        lng[swapped], lat[swapped] = lat[swapped], lng[swapped].copy()
        standard = pl.DataFrame(
            {
                "address": texts,
                "district_code": places.district_code[where],
                "lng": np.where(unsurveyed, np.nan, lng),
                "lat": np.where(unsurveyed, np.nan, lat),
                "updated_at": _stamp("2026-10-20T08:00:00", len(texts)),
            }
        ).with_columns(pl.col("lng").fill_nan(None), pl.col("lat").fill_nan(None))
        city.deliveries.append(Delivery("310000.gh", "standard_addresses", standard, "标准地址信息 (规划资源)"))

    # -- what benefit policies read: drawn from a stream of their own, so the data above stays the same ------
    step("benefit facts")
    facts = np.random.default_rng([config.seed, 2026])
    city.deliveries.extend(
        _person_facts(facts, ids, born, ages, household, edu_level, employment, today_days)
        + _enterprise_facts(facts, uscc, employees, established, today_days)
    )
    return city


def _person_facts(
    rng: np.random.Generator,
    ids: np.ndarray,
    born: np.ndarray,
    ages: np.ndarray,
    household: np.ndarray,
    edu_level: np.ndarray,
    employment: np.ndarray,
    today_days: int,
) -> list[Delivery]:
    """残联's disability certificates, 教委's graduates, 民政's assistance recipients."""
    n = len(ids)
    # About 2.5 % of residents hold a certificate, more of them old; level 1 is the most severe.
    disabled = np.flatnonzero(rng.random(n) < 0.01 + 0.0004 * ages)
    k = len(disabled)
    certified = np.maximum(born[disabled] + 365, today_days - rng.integers(30, 20 * 365, k))
    disabilities = pl.DataFrame(
        {
            "id_number": ids[disabled],
            "disability_category": rng.choice(np.array(["视力", "听力", "言语", "肢体", "智力", "精神", "多重"]), k),
            "disability_level": rng.choice(np.array([1, 2, 3, 4]), k, p=[0.12, 0.23, 0.3, 0.35]).astype(np.int64),
            "certified_on": certified.astype("datetime64[D]"),
            "updated_at": _stamp("2026-10-30T10:00:00", k),
        }
    )
    # Graduates of the last ten years with a college education, about a fifth of them this year's.
    studied = np.flatnonzero((edu_level >= 3) & (ages >= 20) & (ages <= 32))
    years_ago = np.where(rng.random(len(studied)) < 0.2, 0, rng.integers(1, 10, len(studied)))
    graduated = today_days - 150 - years_ago * 365  # June of the year
    keep = graduated > born[studied] + 19 * 365
    studied, graduated = studied[keep], graduated[keep]
    degree = np.where(edu_level[studied] == 3, "专科", np.where(edu_level[studied] == 4, "本科", "硕士"))
    degree = np.where((degree == "硕士") & (rng.random(len(studied)) < 0.15), "博士", degree)
    graduates = pl.DataFrame(
        {
            "id_number": ids[studied],
            "school": rng.choice(
                np.array(["复旦大学", "上海交通大学", "同济大学", "华东师范大学", "上海大学"]), len(studied)
            ),
            "degree": degree,
            "graduated_on": graduated.astype("datetime64[D]"),
            "updated_at": _stamp("2026-09-30T10:00:00", len(studied)),
        }
    )
    # Whole households receive assistance; households with an unemployed member more often.
    households = int(household.max()) + 1
    unemployed = np.zeros(households, dtype=bool)
    unemployed[household[employment == "失业"]] = True
    helped_household = rng.random(households) < np.where(unemployed, 0.12, 0.012)
    helped = np.flatnonzero(helped_household[household])
    kind = rng.choice(np.array(["低保", "低收入", "特困"]), households, p=[0.55, 0.4, 0.05])[household[helped]]
    since = today_days - rng.integers(30, 8 * 365, households)[household[helped]]
    assistance = pl.DataFrame(
        {
            "id_number": ids[helped],
            "assistance_type": kind,
            "since": since.astype("datetime64[D]"),
            "updated_at": _stamp("2026-10-31T10:00:00", len(helped)),
        }
    )
    return [
        Delivery("310000.cl", "disabilities", disabilities, "残疾人证信息 (残联)"),
        Delivery("310000.jw", "graduates", graduates, "高校毕业生信息 (教委)"),
        Delivery("310000.mz", "assistance", assistance, "社会救助对象信息 (民政)"),
    ]


def _enterprise_facts(
    rng: np.random.Generator, uscc: np.ndarray, employees: np.ndarray, established: np.ndarray, today_days: int
) -> list[Delivery]:
    """人社's insured headcounts, 国资's leases of state-owned premises, 税务's annual revenue."""
    m = len(uscc)
    insured_now = np.maximum(0, (employees * rng.uniform(0.7, 1.0, m)).round()).astype(np.int64)
    change = rng.normal(0.0, 0.08, m)
    insured_last_year = np.where(
        established > today_days - 365, 0, np.maximum(0, (insured_now / (1 + change)).round())
    ).astype(np.int64)
    arrears = np.where(rng.random(m) < 0.05, rng.integers(1, 6, m), 0).astype(np.int64)
    insurance = pl.DataFrame(
        {
            "credit_code": uscc,
            "insured_now": insured_now,
            "insured_last_year": insured_last_year,
            "arrears_months": arrears,
            "updated_at": _stamp("2026-10-31T12:00:00", m),
        }
    )
    leasing = np.flatnonzero(rng.random(m) < 0.18)
    area = np.maximum(20, employees[leasing] * rng.uniform(5, 15, len(leasing)))
    leases = pl.DataFrame(
        {
            "credit_code": uscc[leasing],
            "landlord_type": np.where(rng.random(len(leasing)) < 0.85, "国有", "集体"),
            "monthly_rent_fen": (area * rng.uniform(80, 200, len(leasing)) * 100).round().astype(np.int64),
            "lease_until": (today_days + rng.integers(60, 3 * 365, len(leasing))).astype("datetime64[D]"),
            "updated_at": _stamp("2026-10-15T12:00:00", len(leasing)),
        }
    )
    revenue_yuan = employees * np.exp(rng.normal(np.log(400_000), 0.8, m))
    returns = pl.DataFrame(
        {
            "credit_code": uscc,
            "tax_year": np.full(m, 2025, dtype=np.int64),
            "revenue_fen": (revenue_yuan * 100).round().astype(np.int64),
            "updated_at": _stamp("2026-05-31T12:00:00", m),
        }
    )
    return [
        Delivery("310000.rs", "enterprise_insurance", insurance, "单位参保信息 (人社)"),
        Delivery("310000.gzw", "enterprise_leases", leases, "国有房屋租赁信息 (国资)"),
        Delivery("310000.swj", "tax_returns", returns, "企业所得税年度申报信息 (税务)"),
    ]


def _licences(
    rng: np.random.Generator,
    ids: np.ndarray,
    names: np.ndarray,
    born: np.ndarray,
    ages: np.ndarray,
    marital: np.ndarray,
    head: np.ndarray,
    household_no: np.ndarray,
    insurance: np.ndarray,
    children: np.ndarray,
    uscc: np.ndarray,
    ent_names: np.ndarray,
    industry: np.ndarray,
    established: np.ndarray,
    today: int,
) -> list[Delivery]:
    """E-licences, each type delivered by its issuing department with its trust level."""

    def frame(
        kind: str,
        level: str,
        who: np.ndarray,
        holder_names: np.ndarray,
        issued: np.ndarray,
        years_valid: int | None,
        prefix: str,
    ) -> pl.DataFrame:
        count = len(who)
        issued = np.minimum(issued, today - 1)
        expires = issued + years_valid * 365 if years_valid else np.full(count, -1)
        return pl.DataFrame(
            {
                "licence_no": np.char.add(prefix, np.char.zfill(np.arange(count).astype(str), 10)),
                "licence_type": np.full(count, kind),
                "holder_id": who,
                "holder_name": holder_names,
                "issued_on": issued.astype("datetime64[D]"),
                "expires_on": pl.Series(np.where(expires < 0, np.datetime64("NaT"), expires.astype("datetime64[D]"))),
                "trust_level": np.full(count, level),
                "updated_at": _stamp("2026-10-31T23:30:00", count),
            }
        )

    adults16 = np.flatnonzero(ages >= 16)
    card_issued = today - rng.integers(0, 20 * 365, len(adults16))
    id_cards = frame("居民身份证", "A", ids[adults16], names[adults16], card_issued, 20, "SFZ")
    heads = np.flatnonzero(head)
    hukou = frame(
        "户口簿", "A", household_no[heads], names[heads], today - rng.integers(0, 30 * 365, len(heads)), None, "HKB"
    )
    married = np.flatnonzero(marital == "已婚")
    marriage = frame(
        "结婚证",
        "A",
        ids[married],
        names[married],
        born[married] + (rng.uniform(22, 35, len(married)) * 365).astype(np.int64),
        None,
        "JHZ",
    )
    birth_cert = frame("出生医学证明", "B", ids[children], names[children], born[children] + 2, None, "CSZ")
    insured = np.flatnonzero(insurance != "未参保")
    social = frame(
        "社会保障卡", "B", ids[insured], names[insured], today - rng.integers(0, 10 * 365, len(insured)), 10, "SBK"
    )
    business = frame("营业执照", "A", uscc, ent_names, established, None, "YYZZ")
    food = np.flatnonzero(np.isin(industry, ["H", "F"]) & (rng.random(len(industry)) < 0.35))
    food_licence = frame(
        "食品经营许可证",
        "C",
        uscc[food],
        ent_names[food],
        np.maximum(established[food], today - 5 * 365 + rng.integers(0, 365, len(food))),
        5,
        "JY",
    )
    return [
        Delivery("310000.ga", "licences_id_card", id_cards, "居民身份证电子证照 (公安)"),
        Delivery("310000.ga", "licences_hukou", hukou, "户口簿电子证照 (公安)"),
        Delivery("310000.mz", "licences_marriage", marriage, "结婚证电子证照 (民政)"),
        Delivery("310000.wj", "licences_birth", birth_cert, "出生医学证明电子证照 (卫健)"),
        Delivery("310000.rs", "licences_social_security", social, "社会保障卡电子证照 (人社)"),
        Delivery("310000.sc", "licences_business", business, "营业执照电子证照 (市场监管)"),
        Delivery("310000.sc", "licences_food", food_licence, "食品经营许可证电子证照 (市场监管)"),
    ]
