"""The sandbox data generator: a deterministic :class:`~connector.sandbox.world.World` from a seed.

Same options, same world, byte for byte: every id is a UUID drawn from a seeded RNG, every amount a Decimal
with kopecks. Evotor's receipts come from their own RNG stream, so ``--clean`` and the default world hold the
same till data and differ only in what 1C and the CRM hold.

What is generated
=================
* stores — Moscow (``Europe/Moscow``, +03:00) and Samara (``Europe/Samara``, +04:00), with Yekaterinburg
  (``Asia/Yekaterinburg``, +05:00) from the fourth store on. S01 and S02 (and every store whose number is 1 or
  2 modulo 4) are open round the clock, the others from 08:00 to 23:00, so night receipts fall on the previous
  UTC date (Evotor's ``close_date``) and, for the Samara store, on the previous Moscow date (1C's clock).
  ``business_date`` is always the store's local date; receipts are made on the local dates from ``start`` to
  ``start + days - 1``.
* a catalog with categories ``dairy``, ``bakery``, ``produce`` (sold by weight), ``grocery``, ``drinks``,
  ``household``, ``tobacco``, ``alcohol`` and ``promo``;
* customers known in all three systems (E.164 phone, 13-digit card, 1C partner and card, CRM customer and
  account), each with an opening balance migrated into the CRM before the window;
* per store and day ``receipts`` till receipts: sales (about 45 % anonymous) with line discounts and, for
  customers, redemption of points as a bonus-app payment; partial and full returns of earlier sales of the
  same store (a sale may be returned in two parts); returns without a basis.

Natural data obey the program (:data:`DEFAULT_PROGRAM_YAML`): a redemption is ≥ ``min_points``, ≤
``max_share_percent`` of the total, never on a receipt with an excluded (tobacco) line, and never more than
what the customer's opening balance still covers (accruals are pending for 14 days, longer than the window).
The per-line ``bonus_redeemed`` is the receipt-level amount spread with
:func:`connector.rules.spread_redeemed`; Evotor states it at receipt level only, and so does the canonical
document (:func:`connector.sandbox.answer_key.canonical_documents`).

The earlier connector run (unless ``clean``) — see :mod:`connector.sandbox.answer_key`
=======================================================================================
* **1C receipts**: one per Evotor receipt (``ЧекККМ`` for a sale, ``ЧекККМВозврат`` for a return, its
  ``ЧекККМ`` the sale's 1C receipt or empty for a return without a basis), ``Комментарий``
  ``onec:evotor:<receipt id>:sale|return``, the same lines and customer, posted, not marked for deletion,
  ``Date`` in Moscow time;
* **CRM operations**: the expected postings — :func:`connector.rules.expected_postings` over each customer's
  documents in order of ``occurred_at``, ties by id, with ``cumulative_spend_before`` 0 (computed at scale by
  :mod:`connector.sandbox._expected`, which the tests hold equal to it): accrual and
  redemption refund as ``credit`` (accruals with ``activationDate`` = ``available_at`` and ``expireDate`` =
  ``expires_at``), redemption and accrual reversal as ``charge``; amount = |points|; ``comment`` =
  ``crm:<posting key>``, the posting key being ``evotor:<receipt id>:<kind>``. Each customer's opening balance
  is a ``credit`` dated 30 days before ``start`` whose comment is free text (not ``crm:…``): a manual
  operation, never a connector posting;
* **1C bonus documents**: one ``НачислениеИСписаниеБонусныхБаллов`` per CRM operation (duplicates and orphans
  included), same points (credit → ``Начисление``, charge → ``Списание``), ``Комментарий``
  ``onec:<posting key>`` — for a manual CRM operation the key is ``crm:<operation id>:adjustment``.

Injected discrepancies — exactly what the answer key lists
==========================================================
Each entry has ``kind``, ``store`` (Evotor store id, the canonical store id), ``business_date`` (the store's
local date of the Evotor receipt involved) and ``refs``. Targets are distinct receipts; a sale chosen for one
kind has no returns and carries no other injection. Counts: ``max(3, receipts in the window // 400)`` per kind
where eligible, spread over stores and days.

Documents, tills vs accounting (left ``evotor``, right ``onec``, matched by ``Комментарий``):

* ``missing_in_right`` — an Evotor sale with no 1C receipt. refs ``evotor``.
* ``missing_in_left`` — a 1C ``ЧекККМ`` whose comment names an Evotor id that does not exist (anonymous,
  posted, made between 12:00 and 20:00 local time). refs ``onec`` (Ref_Key); ``store`` / ``business_date`` are
  the 1C receipt's.
* ``amount_mismatch`` — the 1C receipt's last line (hence its total) is 1.00–99.99 higher than Evotor's. refs
  ``evotor``, ``onec``.
* ``line_mismatch`` — totals agree; one 1C line names another product (sku) with the same quantity, price and
  amount. A pair whose totals differ is an ``amount_mismatch`` only. refs ``evotor``, ``onec``.
* ``customer_mismatch`` — the 1C receipt names another customer than Evotor's. refs ``evotor``, ``onec``.

Loyalty ledger (Evotor documents vs CRM operations, by posting key):

* ``missing_accrual`` — a sale's expected accrual is absent from the CRM (and from 1C). refs ``evotor``,
  ``crm_account``, ``key``.
* ``accrual_mismatch`` — the CRM accrual (and its 1C mirror) differs from the expected amount by 1–20 points.
  refs ``evotor``, ``crm`` (operation id), ``crm_account``, ``key``.
* ``missing_reversal`` — a return's expected accrual reversal is absent from the CRM (and 1C); its refund, if
  any, is there. refs ``evotor`` (the return), ``crm_account``, ``key``.
* ``duplicate_posting`` — an accrual written twice (a retry): two CRM operations with the same comment, both
  mirrored in 1C. refs ``evotor``, ``crm`` (the later operation), ``onec`` (the later 1C document),
  ``crm_account``, ``key``.
* ``orphan_posting`` — a CRM credit ``crm:evotor:<id>:accrual`` for an anonymous sale, which expects no
  posting; mirrored in 1C. refs ``evotor`` (that sale), ``crm``, ``onec``, ``crm_account``, ``key``.
* ``redemption_over_limit`` — a sale whose redemption breaks a limit
  (:func:`connector.rules.redemption_violations` reports it): over ``max_share_percent``, below
  ``min_points``, or more than the amount of the lines outside the excluded categories (a tobacco purchase
  paid with points); the CRM holds the redemption as the till states it. refs ``evotor``, ``crm`` (the
  redemption's operation), ``crm_account``, ``key``.
* ``return_without_sale`` — an Evotor return with no ``base_document_id`` (half anonymous, half naming a
  customer); it posts nothing. refs ``evotor``, ``onec`` (its ``ЧекККМВозврат``).
* ``balance_mismatch`` — a customer whose 1C total (Σ ``Начисление`` − Σ ``Списание`` over posted documents of
  the partner) differs from the CRM total (Σ credits − Σ charges over the account's operations): a manual 1C
  document (free-text comment, not ``onec:…``) with no CRM counterpart. Every other difference leaves the two
  totals equal, because 1C mirrors each CRM operation. ``store`` is ``""`` (a balance belongs to a customer);
  ``business_date`` is the 1C document's Moscow date. refs ``onec`` (that document), ``onec_partner``,
  ``crm_account``.

With ``clean``, only ``redemption_over_limit`` and ``return_without_sale`` are listed (refs ``evotor`` only):
they are in the till data, and a correct sync leaves nothing else to find. ``clean`` leaves every ledger empty,
so the CRM refuses the till's redemptions (no points to charge) unless ``opening_balances`` keeps the opening
credits in it.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from connector.sandbox._till import Till, TillPlan, new_uuid, seeded_rng
from connector.sandbox.world import Product, SandboxCustomer, Store, World

__all__ = [
    "DEFAULT_PROGRAM_YAML",
    "EVOTOR_SIDE_KINDS",
    "SandboxOptions",
    "generate_world",
    "new_uuid",
    "seeded_rng",
]

DEFAULT_PROGRAM_YAML = """\
program:
  name: Бонусы
  timezone: Europe/Moscow
  point_value: "1.00"
  accrual:
    percent: "5"
    tiers:
      - {name: Silver, from_spend: "30000", percent: "7"}
      - {name: Gold, from_spend: "100000", percent: "10"}
    categories: {tobacco: "0", alcohol: "0", promo: "2"}
    fixed_per_purchase: "0"
    min_purchase: "100"
    promotions:
      - {name: Чёрная пятница, from: 2026-11-27, to: 2026-11-30, multiplier: "2"}
    rounding: floor
  activation_delay_days: 14
  expiry_days: 365
  redemption: {max_share_percent: "30", min_points: "100", excluded_categories: [tobacco]}
  events: {welcome: "200", birthday: "300", referral: "500"}
"""
"""The program the sandbox data is generated under (DESIGN.md §3)."""

EVOTOR_SIDE_KINDS = ("redemption_over_limit", "return_without_sale")
"""Discrepancy kinds that live in the till data itself, present with ``clean`` too."""

_ZONES = (("Europe/Moscow", "Москва"), ("Europe/Samara", "Самара"), ("Europe/Moscow", "Москва"))
_FOURTH_ZONE = ("Asia/Yekaterinburg", "Екатеринбург")
_STREETS = (
    "ул. Тверская, 12",
    "Московское ш., 45",
    "Ленинский пр-т, 78",
    "ул. Малышева, 9",
    "пр-т Мира, 101",
)

# (category, name, price, sold by weight)
_CATALOG: tuple[tuple[str, str, str, bool], ...] = (
    ("dairy", "Молоко 3,2% 1 л", "89.90", False),
    ("dairy", "Кефир 2,5% 900 г", "79.50", False),
    ("dairy", "Творог 9% 200 г", "119.99", False),
    ("dairy", "Сыр Российский", "849.00", True),
    ("dairy", "Масло сливочное 82,5% 180 г", "239.90", False),
    ("bakery", "Хлеб Бородинский 400 г", "64.90", False),
    ("bakery", "Батон нарезной 350 г", "52.40", False),
    ("bakery", "Круассан с шоколадом", "89.00", False),
    ("produce", "Бананы", "139.90", True),
    ("produce", "Яблоки Гала", "169.00", True),
    ("produce", "Томаты черри", "389.00", True),
    ("produce", "Картофель мытый", "59.90", True),
    ("produce", "Огурцы гладкие", "229.00", True),
    ("grocery", "Гречка ядрица 900 г", "119.90", False),
    ("grocery", "Макароны спагетти 450 г", "99.90", False),
    ("grocery", "Кофе молотый 250 г", "549.00", False),
    ("grocery", "Чай чёрный 100 пак.", "329.90", False),
    ("grocery", "Шоколад горький 90 г", "129.99", False),
    ("grocery", "Масло подсолнечное 1 л", "149.90", False),
    ("drinks", "Вода минеральная 1,5 л", "69.90", False),
    ("drinks", "Сок апельсиновый 1 л", "159.90", False),
    ("drinks", "Лимонад 0,5 л", "74.90", False),
    ("household", "Средство для посуды 500 мл", "189.00", False),
    ("household", "Бумажные полотенца 2 рул.", "159.00", False),
    ("household", "Стиральный порошок 3 кг", "799.00", False),
    ("tobacco", "Сигареты Ява Золотая", "219.00", False),
    ("tobacco", "Сигареты Winston Blue", "245.00", False),
    ("tobacco", "Стики для нагревания", "230.00", False),
    ("alcohol", "Вино красное сухое 0,75 л", "699.00", False),
    ("alcohol", "Пиво светлое 0,45 л", "94.90", False),
    ("alcohol", "Коньяк 5 лет 0,5 л", "1299.00", False),
    ("promo", "Акция: Сыр Гауда 200 г", "199.90", False),
    ("promo", "Акция: Печенье овсяное 300 г", "89.90", False),
    ("promo", "Акция: Куриное филе", "429.00", True),
    ("promo", "Акция: Йогурт 4 шт.", "159.00", False),
)
_FIRST = ("Анна", "Мария", "Елена", "Ольга", "Ирина", "Алексей", "Дмитрий", "Сергей", "Андрей", "Михаил")
_LAST = (
    "Иванов",
    "Смирнов",
    "Кузнецов",
    "Попов",
    "Соколов",
    "Лебедев",
    "Козлов",
    "Новиков",
    "Морозов",
    "Волков",
)
_MOBILE = (
    "903",
    "905",
    "909",
    "915",
    "916",
    "917",
    "925",
    "926",
    "977",
    "985",
    "999",
    "927",
    "937",
    "912",
    "922",
)


@dataclass(frozen=True)
class SandboxOptions:
    """What to generate.

    Attributes:
        seed: the RNG seed; same options, same world.
        stores: number of stores.
        days: number of business days, from ``start``.
        start: the first business date.
        clean: only Evotor holds receipts; 1C and the CRM hold master data only.
        receipts: till receipts per store and day.
        customers: loyalty customers; 0 picks ``max(60, 25 × stores)``.
        opening_balances: with ``clean``, the CRM still holds each customer's opening balance (the manual
            credit dated before the window), so that a sync can charge the till's redemptions; 1C holds none
            until the connector mirrors the CRM ledger.
    """

    seed: int = 7
    stores: int = 3
    days: int = 7
    start: date = date(2026, 11, 1)
    clean: bool = False
    receipts: int = 40
    customers: int = 0
    opening_balances: bool = False


def _ean13(body: str) -> str:
    odd = sum(int(digit) for digit in body[0::2])
    even = sum(int(digit) for digit in body[1::2])
    return body + str((10 - (odd + 3 * even) % 10) % 10)


def _stores(options: SandboxOptions, rng: random.Random) -> list[Store]:
    stores = []
    for index in range(options.stores):
        zone, city = _FOURTH_ZONE if index % 4 == 3 else _ZONES[index % 4]
        street = _STREETS[index % len(_STREETS)]
        name = f"{city}, {street}" + (f" (№{index + 1})" if index >= len(_STREETS) else "")
        stores.append(
            Store(
                id=new_uuid(rng),
                code=f"S{index + 1:02d}",
                name=name,
                timezone=zone,
                evotor_device_id=new_uuid(rng),
                onec_store_ref=new_uuid(rng),
                onec_register_ref=new_uuid(rng),
            )
        )
    return stores


def _products(rng: random.Random) -> list[Product]:
    products = []
    for index, (category, name, price, _weighted) in enumerate(_CATALOG):
        products.append(
            Product(
                sku=f"A-{10001 + index}",
                name=name,
                category=category,
                price=Decimal(price),
                evotor_id=new_uuid(rng),
                onec_ref=new_uuid(rng),
                barcode=_ean13(f"460{rng.randrange(10**9):09d}"),
            )
        )
    return products


def _customers(count: int, rng: random.Random) -> list[SandboxCustomer]:
    phones: set[str] = set()
    cards: set[str] = set()
    customers = []
    for index in range(count):
        phone = _unique(phones, lambda: f"+7{rng.choice(_MOBILE)}{rng.randrange(10**7):07d}")
        card = _unique(cards, lambda: _ean13(f"277{rng.randrange(10**9):09d}"))
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        female = first.endswith("а") or first.endswith("я")
        customers.append(
            SandboxCustomer(
                phone=phone,
                card=card,
                name=f"{last}{'а' if female else ''} {first}",
                birthday=date(rng.randint(1960, 2004), rng.randint(1, 12), rng.randint(1, 28)),
                onec_partner_ref=new_uuid(rng),
                onec_card_ref=new_uuid(rng),
                crm_customer_id=5001 + index,
                crm_account_id=101 + index,
            )
        )
    return customers


def _unique(seen: set[str], draw: Callable[[], str]) -> str:
    while True:
        value = str(draw())
        if value not in seen:
            seen.add(value)
            return value


def generate_world(options: SandboxOptions | None = None) -> World:
    """Generate the sandbox world for ``options`` (defaults: seed 7, 3 stores, 7 days from 2026-11-01).

    Example:
        >>> world = generate_world(SandboxOptions(seed=7, stores=2, days=1))
        >>> len(world.stores), world.start.isoformat()
        (2, '2026-11-01')
    """
    options = options or SandboxOptions()
    collecting = gc.isenabled()
    gc.disable()  # a million acyclic objects: the cycle collector's repeated full scans would cost a third
    try:
        return _generate(options)
    finally:
        if collecting:
            gc.enable()


def _generate(options: SandboxOptions) -> World:
    from connector.sandbox.answer_key import record_earlier_run

    master = seeded_rng(options.seed, "master")
    world = World(
        seed=options.seed,
        start=options.start,
        days=options.days,
        clean=options.clean,
        program_yaml=DEFAULT_PROGRAM_YAML,
        onec_program_ref=new_uuid(master),
        stores=_stores(options, master),
        products=_products(master),
    )
    world.customers = _customers(options.customers or max(60, 25 * options.stores), master)
    opening = {
        c.phone: Decimal(master.randrange(0, 41) * 50).quantize(Decimal("0.01")) for c in world.customers
    }
    count = max(3, options.stores * options.days * options.receipts // 400)
    plan = TillPlan.spread(world, EVOTOR_SIDE_KINDS, count)
    weighted = {product.sku for product, row in zip(world.products, _CATALOG, strict=True) if row[3]}
    world.receipts = Till(world, opening, plan, receipts=options.receipts, weighted=weighted).run()
    record_earlier_run(world, opening, plan.made, opening_in_clean=options.opening_balances)
    return world
