"""Demo titles and their real translations into the demo regions' languages.

Titles are built from a small vocabulary so that every localized title is a
real translation and not a placeholder: whole phrases translated as phrases,
and "X and Y" titles from nouns translated one by one and joined by each
language's own conjunction rules (Korean 와/과 after a vowel or consonant,
Arabic and Hebrew prefix their "and" to the second noun, Russian lowers the
second noun). The scripts cover Latin, Cyrillic, Arabic (RTL), Hebrew (RTL),
Devanagari, Thai, Japanese, Korean and Simplified Chinese.
"""

from __future__ import annotations

REGION_LANGUAGES: dict[str, str] = {
    "DE": "de",
    "FR": "fr",
    "JP": "ja",
    "KR": "ko",
    "SA": "ar",
    "IL": "he",
    "RU": "ru",
    "IN": "hi",
    "TH": "th",
    "CN": "zh",
}
"""Demo region (ISO 3166) -> language (BCP-47 primary subtag) of its localized titles."""

LANGUAGES = ("en",) + tuple(REGION_LANGUAGES.values())

# Columns: en, de, fr, ja, ko, ar, he, ru, hi, th, zh.
_PHRASES: tuple[tuple[str, ...], ...] = (
    (
        "The Last Summer",
        "Der letzte Sommer",
        "Le Dernier Été",
        "最後の夏",
        "마지막 여름",
        "الصيف الأخير",
        "הקיץ האחרון",
        "Последнее лето",
        "आख़िरी गर्मी",
        "ฤดูร้อนสุดท้าย",
        "最后的夏天",
    ),
    (
        "The Long Night",
        "Die lange Nacht",
        "La Longue Nuit",
        "長い夜",
        "긴 밤",
        "الليلة الطويلة",
        "הלילה הארוך",
        "Долгая ночь",
        "लंबी रात",
        "คืนอันยาวนาน",
        "漫长的夜",
    ),
    (
        "The Lost City",
        "Die verlorene Stadt",
        "La Cité perdue",
        "失われた都市",
        "잃어버린 도시",
        "المدينة المفقودة",
        "העיר האבודה",
        "Потерянный город",
        "खोया हुआ शहर",
        "เมืองที่สาบสูญ",
        "失落之城",
    ),
    (
        "The Silent House",
        "Das stille Haus",
        "La Maison silencieuse",
        "静かな家",
        "조용한 집",
        "البيت الصامت",
        "הבית השקט",
        "Тихий дом",
        "ख़ामोश घर",
        "บ้านเงียบ",
        "寂静之屋",
    ),
    (
        "Red Horizon",
        "Roter Horizont",
        "Horizon rouge",
        "赤い地平線",
        "붉은 지평선",
        "الأفق الأحمر",
        "האופק האדום",
        "Красный горизонт",
        "लाल क्षितिज",
        "ขอบฟ้าสีแดง",
        "红色地平线",
    ),
    (
        "The Final Game",
        "Das letzte Spiel",
        "Le Dernier Match",
        "最後の試合",
        "마지막 경기",
        "المباراة الأخيرة",
        "המשחק האחרון",
        "Последняя игра",
        "आख़िरी खेल",
        "เกมสุดท้าย",
        "最后一战",
    ),
    (
        "Beyond the Stars",
        "Jenseits der Sterne",
        "Au-delà des étoiles",
        "星の彼方へ",
        "별 너머로",
        "ما وراء النجوم",
        "מעבר לכוכבים",
        "За пределами звёзд",
        "सितारों से परे",
        "เหนือดวงดาว",
        "星辰之外",
    ),
    (
        "The Secret Garden",
        "Der geheime Garten",
        "Le Jardin secret",
        "秘密の花園",
        "비밀의 정원",
        "الحديقة السرية",
        "הגן הסודי",
        "Таинственный сад",
        "गुप्त बाग़",
        "สวนลับ",
        "秘密花园",
    ),
    (
        "The Dark Forest",
        "Der dunkle Wald",
        "La Forêt sombre",
        "暗い森",
        "어두운 숲",
        "الغابة المظلمة",
        "היער האפל",
        "Тёмный лес",
        "अंधेरा जंगल",
        "ป่ามืด",
        "黑暗森林",
    ),
    (
        "The Brave Little Fox",
        "Der tapfere kleine Fuchs",
        "Le Petit Renard courageux",
        "勇敢な子ぎつね",
        "용감한 아기 여우",
        "الثعلب الصغير الشجاع",
        "השועל הקטן והאמיץ",
        "Храбрый лисёнок",
        "बहादुर नन्ही लोमड़ी",
        "จิ้งจอกน้อยผู้กล้าหาญ",
        "勇敢的小狐狸",
    ),
    (
        "Love in Paris",
        "Liebe in Paris",
        "L'Amour à Paris",
        "パリの恋",
        "파리의 사랑",
        "حب في باريس",
        "אהבה בפריז",
        "Любовь в Париже",
        "पेरिस में प्यार",
        "รักในปารีส",
        "巴黎之恋",
    ),
    (
        "The Empty Room",
        "Das leere Zimmer",
        "La Chambre vide",
        "空っぽの部屋",
        "빈 방",
        "الغرفة الفارغة",
        "החדר הריק",
        "Пустая комната",
        "ख़ाली कमरा",
        "ห้องว่าง",
        "空房间",
    ),
    (
        "Night Train",
        "Nachtzug",
        "Train de nuit",
        "夜行列車",
        "야간열차",
        "قطار الليل",
        "רכבת הלילה",
        "Ночной поезд",
        "रात की रेलगाड़ी",
        "รถไฟกลางคืน",
        "夜行列车",
    ),
    (
        "The Iron King",
        "Der eiserne König",
        "Le Roi de fer",
        "鉄の王",
        "강철의 왕",
        "الملك الحديدي",
        "מלך הברזל",
        "Железный король",
        "लौह राजा",
        "ราชาเหล็ก",
        "钢铁之王",
    ),
)

# Columns: en, de, fr, ja, ko, ar (without article), he, ru, hi, th, zh.
_NOUNS: tuple[tuple[str, ...], ...] = (
    ("Fire", "Feuer", "Feu", "炎", "불", "نار", "אש", "Огонь", "आग", "ไฟ", "火"),
    ("Ice", "Eis", "Glace", "氷", "얼음", "جليد", "קרח", "Лёд", "बर्फ़", "น้ำแข็ง", "冰"),
    ("Blood", "Blut", "Sang", "血", "피", "دم", "דם", "Кровь", "ख़ून", "เลือด", "血"),
    ("Gold", "Gold", "Or", "金", "황금", "ذهب", "זהב", "Золото", "सोना", "ทองคำ", "黄金"),
    ("Stone", "Stein", "Pierre", "石", "돌", "حجر", "אבן", "Камень", "पत्थर", "หิน", "石头"),
    ("Shadow", "Schatten", "Ombre", "影", "그림자", "ظل", "צל", "Тень", "छाया", "เงา", "影子"),
    ("Light", "Licht", "Lumière", "光", "빛", "نور", "אור", "Свет", "रोशनी", "แสง", "光"),
    ("Storm", "Sturm", "Tempête", "嵐", "폭풍", "عاصفة", "סערה", "Буря", "तूफ़ान", "พายุ", "风暴"),
    ("Night", "Nacht", "Nuit", "夜", "밤", "ليل", "לילה", "Ночь", "रात", "ราตรี", "夜"),
    ("Sea", "Meer", "Mer", "海", "바다", "بحر", "ים", "Море", "समुद्र", "ทะเล", "海"),
    ("Wind", "Wind", "Vent", "風", "바람", "ريح", "רוח", "Ветер", "हवा", "ลม", "风"),
    ("Dust", "Staub", "Poussière", "塵", "먼지", "غبار", "אבק", "Пыль", "धूल", "ฝุ่น", "尘埃"),
    ("Smoke", "Rauch", "Fumée", "煙", "연기", "دخان", "עשן", "Дым", "धुआँ", "ควัน", "烟"),
    ("Silver", "Silber", "Argent", "銀", "은", "فضة", "כסף", "Серебро", "चाँदी", "เงิน", "银"),
    ("Thunder", "Donner", "Tonnerre", "雷", "천둥", "رعد", "רעם", "Гром", "गरज", "ฟ้าร้อง", "雷霆"),
    ("Rain", "Regen", "Pluie", "雨", "비", "مطر", "גשם", "Дождь", "बारिश", "ฝน", "雨"),
    ("Moon", "Mond", "Lune", "月", "달", "قمر", "ירח", "Луна", "चाँद", "จันทร์", "月亮"),
    ("Sun", "Sonne", "Soleil", "太陽", "태양", "شمس", "שמש", "Солнце", "सूरज", "ตะวัน", "太阳"),
    ("Iron", "Eisen", "Fer", "鉄", "강철", "حديد", "ברזל", "Железо", "लोहा", "เหล็ก", "钢铁"),
    ("Ash", "Asche", "Cendre", "灰", "재", "رماد", "אפר", "Пепел", "राख", "เถ้าถ่าน", "灰烬"),
    ("Glass", "Glas", "Verre", "ガラス", "유리", "زجاج", "זכוכית", "Стекло", "काँच", "แก้ว", "玻璃"),
    ("Honey", "Honig", "Miel", "蜜", "꿀", "عسل", "דבש", "Мёд", "शहद", "น้ำผึ้ง", "蜂蜜"),
    ("Salt", "Salz", "Sel", "塩", "소금", "ملح", "מלח", "Соль", "नमक", "เกลือ", "盐"),
    ("Bone", "Knochen", "Os", "骨", "뼈", "عظم", "עצם", "Кость", "हड्डी", "กระดูก", "骨"),
)
_COLUMN = {language: i for i, language in enumerate(LANGUAGES)}


def _korean_and(first: str) -> str:
    """와 after a final vowel, 과 after a final consonant (batchim) of a Hangul syllable."""
    last = ord(first[-1]) - 0xAC00
    has_batchim = 0 <= last < 11172 and last % 28 != 0
    return first + ("과 " if has_batchim else "와 ")


def _join_and(first: str, second: str, language: str) -> str:
    """ "first and second" as a title in ``language``."""
    if language == "ko":
        return _korean_and(first) + second
    if language == "ar":
        return f"ال{first} وال{second}"
    if language == "he":
        return f"{first} ו{second}"
    joiners = {
        "en": " and ",
        "de": " und ",
        "fr": " et ",
        "ru": " и ",
        "hi": " और ",
        "th": "และ",
        "ja": "と",
        "zh": "与",
    }
    if language in ("fr", "ru"):
        second = second.lower()
    return first + joiners[language] + second


def title_count() -> int:
    """How many distinct demo titles the vocabulary makes."""
    return len(_PHRASES) + len(_NOUNS) * (len(_NOUNS) - 1)


def title_in(number: int, language: str) -> str:
    """Demo title ``number`` (0 <= number < title_count()) in ``language``."""
    column = _COLUMN[language]
    if number < len(_PHRASES):
        return _PHRASES[number][column]
    first, second = divmod(number - len(_PHRASES), len(_NOUNS) - 1)
    second += second >= first  # skip "X and X"
    return _join_and(_NOUNS[first][column], _NOUNS[second][column], language)
