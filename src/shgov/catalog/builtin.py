"""Code lists of the national catalog guide, and the demo city's catalog content.

The code lists are the guide's (共享类型, 开放类型, 格式大类, 更新周期, 数据分级 …), keyed by a short
English code with the Chinese label. The demo content — titles and grading of the data items the
built-in resources carry, the key scenarios, a few demands and negative-list entries — is seeded once
and is data from then on.
"""

from __future__ import annotations

SHARING_TYPES = {"unconditional": "无条件共享", "conditional": "有条件共享", "none": "不予共享"}
OPEN_TYPES = {"unconditional": "无条件开放", "conditional": "有条件开放", "none": "不予开放"}
SHARING_METHODS = {"api": "接口", "database": "数据库", "file": "文件"}
FORMAT_CLASSES = {
    "file": "电子文件",
    "spreadsheet": "电子表格",
    "database": "数据库",
    "image": "图形图像",
    "stream": "流媒体",
    "self_describing": "自描述格式",
    "service": "服务接口",
}
# code → (label, days after which a delivery is overdue; None: no fixed cycle)
UPDATE_CYCLES: dict[str, tuple[str, int | None]] = {
    "realtime": ("实时", 1),
    "daily": ("每日", 1),
    "weekly": ("每周", 7),
    "monthly": ("每月", 31),
    "quarterly": ("每季度", 92),
    "half_yearly": ("每半年", 183),
    "yearly": ("每年", 366),
    "other": ("其他", None),
}
SENSITIVITY = {"general": "一般", "important": "重要", "core": "核心"}
SENSITIVITY_ORDER = ("general", "important", "core")
AGGREGATION_MODES = {"full": "全量", "incremental": "增量"}
CLASSES = {"1": "基础信息资源", "2": "主题信息资源", "3": "部门信息资源"}
# 基础信息资源 项 codes of the four base registers.
REGISTER_ITEMS = {"person": "01", "enterprise": "02", "address": "03", "licence": "04"}
REGISTER_TITLES = {
    "person": ("人口综合库", "全市自然人的权威信息：身份、户籍、婚姻、学历、就业与参保，按一数一源从各部门归集。"),
    "enterprise": ("法人综合库", "全市企业法人的权威信息：登记、行业、注册资本、法定代表人、纳税状态。"),
    "address": ("空间地理综合库（标准地址）", "全市标准地址及其所在区、街镇、居村、网格与坐标。"),
    "licence": ("电子证照库", "各发证部门签发的电子证照及其可信等级。"),
}

# item name → (title, sensitivity, personal data?)
ITEM_DEFAULTS: dict[str, tuple[str, str, bool]] = {
    "id_number": ("公民身份号码", "core", True),
    "name": ("姓名/名称", "important", False),
    "sex": ("性别", "general", True),
    "birth_date": ("出生日期", "important", True),
    "household_no": ("户号", "important", True),
    "relation": ("与户主关系", "general", True),
    "district_code": ("所在区代码", "general", False),
    "township_code": ("所在街镇代码", "general", False),
    "community_code": ("所在居村代码", "general", False),
    "address": ("地址", "important", False),
    "marital_status": ("婚姻状况", "important", True),
    "updated_at": ("更新时间", "general", False),
    "spouse_id_number": ("配偶身份号码", "core", True),
    "registered_on": ("登记日期", "general", False),
    "child_id_number": ("新生儿身份号码", "core", True),
    "child_name": ("新生儿姓名", "important", True),
    "parent_id_number": ("父/母身份号码", "core", True),
    "birth_place": ("出生地点", "general", False),
    "employment_status": ("就业状态", "important", True),
    "insurance_type": ("参保类型", "important", True),
    "education": ("学历", "general", True),
    "credit_code": ("统一社会信用代码", "general", False),
    "industry_section": ("行业门类", "general", False),
    "registered_capital_fen": ("注册资本（分）", "general", False),
    "legal_representative_id": ("法定代表人身份号码", "core", True),
    "legal_representative_name": ("法定代表人姓名", "important", True),
    "established_on": ("成立日期", "general", False),
    "status": ("登记状态", "general", False),
    "tax_status": ("纳税状态", "important", False),
    "employees": ("从业人数", "general", False),
    "licence_no": ("证照编号", "important", False),
    "licence_type": ("证照类型", "general", False),
    "holder_id": ("持证主体代码", "core", True),
    "holder_name": ("持证主体名称", "important", True),
    "issued_on": ("签发日期", "general", False),
    "expires_on": ("有效期至", "general", False),
    "trust_level": ("可信等级", "general", False),
    "issuer_department": ("签发部门", "general", False),
    "lng": ("经度", "general", False),
    "lat": ("纬度", "general", False),
    "address_id": ("地址标识", "general", False),
    "grid_code": ("网格代码", "general", False),
    "cell": ("H3 单元", "general", False),
    "precision": ("定位精度", "general", False),
    "placed_by": ("定位方式", "general", False),
    "source": ("地址来源", "general", False),
    "phone": ("联系电话", "important", True),
}

KEY_SCENARIOS = (
    ("birth", "出生一件事", "新生儿出生医学证明、户口登记、社保卡、医保参保一次办理"),
    ("enterprise-start", "企业开办一件事", "企业登记、印章、发票、社保与公积金开户一次办理"),
    ("proactive-benefits", "免申即享", "按基础信息主动识别政策对象，无需申请"),
    ("city-operations", "一网统管城市运行", "城市运行事件的发现、派单与处置"),
    ("social-assistance", "社会救助精准认定", "低保、特困等救助对象的核对与动态管理"),
)

# (department, resource code or None, items, scenario, key scenario)
DEMO_DEMANDS = (
    (
        "310000.mz",
        "population",
        ["id_number", "name", "household_no", "address"],
        "社会救助家庭核对",
        "social-assistance",
    ),
    ("310115.mz", "population", ["id_number", "name", "address"], "浦东新区高龄津贴主动发放", "proactive-benefits"),
    ("310000.yb", "births", ["child_id_number", "child_name", "birth_date"], "新生儿医保参保", "birth"),
    ("310000.gjj", None, ["公积金缴存基数"], "公积金贷款额度核定", None),
    ("310000.sj", "tax_registrations", ["credit_code", "tax_status"], "财政资金审计对象核查", None),
)
# (resource code, item or "" for the whole resource, legal basis)
DEMO_NEGATIVE = (
    (
        "marriages",
        "spouse_id_number",
        "《中华人民共和国个人信息保护法》第二十八条：敏感个人信息非为特定目的和充分必要不得处理",
    ),
    (
        "tax_registrations",
        "tax_status",
        "《中华人民共和国税收征收管理法》第八条：纳税人的税收违法行为以外的涉税信息保密",
    ),
)
