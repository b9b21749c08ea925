//! Embedded word lists and the builders of company names, domains and person names.
//!
//! Company cores combine an adjective, a noun and an industry descriptor ("Blue Harbor Health")
//! or a compound and a descriptor ("Northwind Logistics"): several hundred thousand distinct
//! cores, so a million-deal org (≈250k accounts) gets unique domains without absurd repeats.

use std::collections::HashSet;

use rand::{Rng, RngExt};

use super::model::pick_weighted;

#[rustfmt::skip]
const ADJECTIVES: [&str; 80] = [
    "Blue", "Red", "Green", "Silver", "Golden", "Iron", "Bright", "Clear", "Swift", "Quiet", "Bold",
    "True", "Prime", "Noble", "Grand", "Open", "Deep", "High", "North", "South", "East", "West",
    "Summit", "Crystal", "Granite", "Cedar", "Maple", "Oak", "Pine", "Willow", "Amber", "Coral",
    "Crimson", "Ivory", "Jade", "Onyx", "Scarlet", "Azure", "Cobalt", "Copper", "Solar", "Lunar",
    "Stellar", "Polar", "Rapid", "Steady", "Smart", "Clever", "Vivid", "Fresh", "Pure", "Wild",
    "Urban", "Coastal", "Alpine", "Prairie", "Silent", "Hidden", "Little", "Great", "Royal",
    "Modern", "Ancient", "Lucky", "Happy", "Brave", "Gentle", "Strong", "Quick", "Sharp",
    "Bluebird", "Evergreen", "Redwood", "Sterling", "Velvet", "Rustic", "Misty", "Sunny", "Windy",
    "Frosty",
];

#[rustfmt::skip]
const NOUNS: [&str; 100] = [
    "Harbor", "River", "Ridge", "Peak", "Valley", "Field", "Stone", "Bridge", "Gate", "Tower",
    "Forge", "Anchor", "Beacon", "Arrow", "Falcon", "Eagle", "Hawk", "Fox", "Wolf", "Bear", "Lion",
    "Otter", "Raven", "Heron", "Crane", "Orbit", "Comet", "Star", "Sun", "Moon", "Cloud", "Wave",
    "Tide", "Lake", "Bay", "Canyon", "Mesa", "Grove", "Meadow", "Forest", "Island", "Point", "Path",
    "Trail", "Road", "Compass", "Atlas", "Vector", "Matrix", "Signal", "Pulse", "Spark", "Flame",
    "Ember", "Frost", "Storm", "Wind", "Rock", "Shield", "Crown", "Key", "Lantern", "Mill",
    "Circuit", "Quantum", "Pixel", "Byte", "Logic", "Core", "Axis", "Vertex", "Prism", "Lens",
    "Mirror", "Canvas", "Garden", "Orchard", "Harvest", "Meridian", "Horizon", "Zenith", "Apex",
    "Keystone", "Cornerstone", "Pinnacle", "Frontier", "Landmark", "Haven", "Port", "Dock", "Wharf",
    "Hill", "Creek", "Springs", "Brook", "Shore", "Cove", "Bluff", "Basin", "Summit",
];

#[rustfmt::skip]
const COMPOUND_A: [&str; 50] = [
    "North", "Blue", "Silver", "Bright", "Iron", "Sun", "Star", "Sky", "Cloud", "Stone", "Clear",
    "Red", "Green", "Gold", "Deep", "High", "Fair", "Wood", "Lake", "River", "Rock", "Snow",
    "Fire", "Storm", "Wind", "Moon", "Oak", "Pine", "Ash", "Elm", "Bay", "Sea", "Sand", "Glen",
    "Kings", "Queens", "Hart", "Fox", "Wolf", "Hawk", "East", "West", "South", "Pacific",
    "Atlantic", "Summit", "Crest", "Dawn", "Night", "Spring",
];

#[rustfmt::skip]
const COMPOUND_B: [&str; 50] = [
    "wind", "peak", "field", "stone", "gate", "bridge", "water", "view", "point", "ridge", "wood",
    "brook", "haven", "light", "line", "mark", "port", "ford", "worth", "ton", "ley", "wick",
    "wave", "works", "well", "bank", "hill", "dale", "moor", "crest", "spire", "vale", "shore",
    "side", "land", "star", "fire", "path", "way", "forge", "craft", "loop", "stack", "grid",
    "base", "hub", "sync", "flow", "scale", "sight",
];

/// Descriptors that fit any industry.
#[rustfmt::skip]
const GENERIC_DESCRIPTORS: [&str; 10] = [
    "Group", "Holdings", "Partners", "Industries", "Solutions", "Services", "Global", "Enterprises",
    "Company", "International",
];

/// Industry-specific descriptors, in the order of `model::INDUSTRIES`.
#[rustfmt::skip]
const INDUSTRY_DESCRIPTORS: [[&str; 8]; 9] = [
    ["Systems", "Labs", "Software", "Technologies", "Data", "Cloud", "Digital", "Analytics"],
    ["Capital", "Financial", "Bank", "Insurance", "Advisors", "Investments", "Payments", "Credit"],
    ["Health", "Medical", "Pharma", "Bio", "Care", "Clinics", "Diagnostics", "Therapeutics"],
    ["Manufacturing", "Materials", "Robotics", "Machinery", "Instruments", "Devices", "Fabrication",
     "Components"],
    ["Retail", "Brands", "Goods", "Outfitters", "Markets", "Stores", "Apparel", "Supply"],
    ["Learning", "Education", "Academy", "Schools", "Institute", "Training", "Tutoring", "University"],
    ["Media", "Studios", "Interactive", "Publishing", "Broadcasting", "Entertainment", "Pictures",
     "Press"],
    ["Logistics", "Freight", "Transport", "Shipping", "Marine", "Cargo", "Fleet", "Express"],
    ["Agency", "Authority", "Council", "Department", "Commission", "Bureau", "Office", "Board"],
];

/// Billing countries: (name, share of accounts, top-level domains, legal suffixes, phone prefix).
pub struct Country {
    pub name: &'static str,
    pub share: f64,
    pub tlds: &'static [&'static str],
    pub legal: &'static [&'static str],
    pub phone: &'static str,
}

#[rustfmt::skip]
pub const COUNTRIES: [Country; 9] = [
    country("United States", 0.55, &["com", "com", "com", "io", "ai", "co"], &["Inc.", "LLC", "Corp.", ""], "+1"),
    country("United Kingdom", 0.10, &["co.uk", "co.uk", "com", "io"], &["Ltd", "plc", ""], "+44"),
    country("Germany", 0.08, &["de", "de", "com"], &["GmbH", "AG"], "+49"),
    country("Canada", 0.07, &["ca", "com"], &["Inc.", "Ltd."], "+1"),
    country("France", 0.05, &["fr", "com"], &["SAS", "S.A."], "+33"),
    country("Australia", 0.05, &["com.au", "com"], &["Pty Ltd"], "+61"),
    country("Netherlands", 0.04, &["nl", "com"], &["B.V."], "+31"),
    country("Sweden", 0.03, &["se", "com"], &["AB"], "+46"),
    country("Japan", 0.03, &["jp", "com"], &["K.K."], "+81"),
];

const fn country(
    name: &'static str,
    share: f64,
    tlds: &'static [&'static str],
    legal: &'static [&'static str],
    phone: &'static str,
) -> Country {
    Country {
        name,
        share,
        tlds,
        legal,
        phone,
    }
}

#[rustfmt::skip]
pub const FIRST_NAMES: [&str; 120] = [
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William",
    "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Charles", "Karen", "Christopher", "Nancy", "Daniel", "Lisa", "Matthew", "Betty", "Anthony",
    "Margaret", "Mark", "Sandra", "Donald", "Ashley", "Steven", "Kimberly", "Paul", "Emily",
    "Andrew", "Donna", "Joshua", "Michelle", "Kenneth", "Carol", "Kevin", "Amanda", "Brian",
    "Melissa", "George", "Deborah", "Timothy", "Stephanie", "Ronald", "Rebecca", "Jason", "Laura",
    "Edward", "Sharon", "Jeffrey", "Cynthia", "Ryan", "Kathleen", "Jacob", "Amy", "Gary", "Angela",
    "Nicholas", "Shirley", "Eric", "Anna", "Jonathan", "Brenda", "Stephen", "Pamela", "Larry",
    "Emma", "Justin", "Nicole", "Scott", "Helen", "Brandon", "Samantha", "Benjamin", "Katherine",
    "Samuel", "Christine", "Gregory", "Debra", "Alexander", "Rachel", "Patrick", "Carolyn", "Frank",
    "Janet", "Raymond", "Maria", "Jack", "Olivia", "Dennis", "Heather", "Jerry", "Catherine",
    "Priya", "Wei", "Aarav", "Sofia", "Lukas", "Chloé", "Mateo", "Yuki", "Hannah", "Noah", "Léa",
    "Jonas", "Ingrid", "Ravi", "Fatima", "Omar", "Mei", "Hiroshi", "Zoë", "Björn",
];

#[rustfmt::skip]
pub const LAST_NAMES: [&str; 162] = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore",
    "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark",
    "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres",
    "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell",
    "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans", "Turner", "Diaz", "Parker",
    "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris", "Morales", "Murphy", "Cook",
    "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson", "Bailey", "Reed", "Kelly",
    "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson", "Brooks", "Chavez", "Wood",
    "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes", "Price", "Alvarez", "Castillo",
    "Sanders", "Patel", "Myers", "Long", "Ross", "Foster", "Jimenez", "Powell", "Jenkins", "Perry",
    "Russell", "Sullivan", "Bell", "Coleman", "Butler", "Henderson", "Barnes", "Gonzales", "Fisher",
    "Vasquez", "Simmons", "Romero", "Jordan", "Patterson", "Alexander", "Hamilton", "Graham",
    "Reynolds", "Griffin", "Wallace", "Moreno", "West", "Cole", "Hayes", "Bryant", "Herrera",
    "Gibson", "Ellis", "Tran", "Medina", "Aguilar", "Stevens", "Murray", "Ford", "Castro",
    "Marshall", "Owens", "Harrison", "Fernandez", "McDonald", "Woods", "Washington", "Kennedy",
    "Wells", "Vargas", "Henry", "Müller", "Schmidt", "Schneider", "Fischer", "Dubois", "Lefèvre",
    "García", "Núñez", "Østergaard", "Söderberg", "Tanaka", "Suzuki", "O'Brien",
];

#[rustfmt::skip]
pub const CONTACT_TITLES: [&str; 30] = [
    "CEO", "CFO", "CTO", "CIO", "COO", "VP of Sales", "VP of Engineering", "VP of Finance",
    "VP of Operations", "Director of IT", "Director of Engineering", "Director of Procurement",
    "Head of Data", "Head of Revenue Operations", "IT Manager", "Engineering Manager",
    "Procurement Manager", "Operations Manager", "Finance Manager", "Data Analyst",
    "Senior Data Engineer", "Solutions Architect", "Product Manager", "Software Engineer",
    "Business Analyst", "Controller", "General Counsel", "Chief Revenue Officer",
    "Sales Operations Manager", "Marketing Director",
];

/// Products that make up deal names ("<Account> - <Product>").
#[rustfmt::skip]
pub const PRODUCTS: [&str; 10] = [
    "Platform", "Analytics Add-on", "Enterprise License", "Data Connectors", "Seat Expansion",
    "Pilot", "Annual Subscription", "Premium Support", "Forecasting Module", "Multi-year Renewal",
];

/// Lower-case ASCII slug of a display string for emails and domains ("Müller" → "muller",
/// "O'Brien" → "obrien").
pub fn slug_into(out: &mut String, text: &str) {
    for c in text.chars() {
        let mapped = match c {
            'a'..='z' | '0'..='9' => Some(c),
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            'à' | 'á' | 'â' | 'ä' | 'å' | 'ã' => Some('a'),
            'é' | 'è' | 'ê' | 'ë' => Some('e'),
            'í' | 'ì' | 'î' | 'ï' => Some('i'),
            'ó' | 'ò' | 'ô' | 'ö' | 'ø' | 'Ø' | 'Ö' => Some('o'),
            'ú' | 'ù' | 'û' | 'ü' => Some('u'),
            'ñ' => Some('n'),
            'ç' => Some('c'),
            _ => None,
        };
        if let Some(m) = mapped {
            out.push(m);
        }
    }
}

/// A company identity: its core name ("Blue Harbor Health"), domain and country.
pub struct CompanyName {
    pub core: String,
    pub domain: String,
    pub country: usize,
}

/// Draws company cores until one has a slug not yet in `used`, and returns it with a domain.
pub fn company<R: Rng + ?Sized>(
    rng: &mut R,
    industry: usize,
    used: &mut HashSet<Box<str>>,
) -> CompanyName {
    let country = pick_weighted(rng, COUNTRIES.iter().map(|c| c.share));
    let descriptors = &INDUSTRY_DESCRIPTORS[industry % INDUSTRY_DESCRIPTORS.len()];
    let mut core = String::new();
    let mut slug = String::new();
    for attempt in 0..40 {
        core.clear();
        let desc = if rng.random_bool(0.7) {
            descriptors[rng.random_range(0..descriptors.len())]
        } else {
            GENERIC_DESCRIPTORS[rng.random_range(0..GENERIC_DESCRIPTORS.len())]
        };
        if rng.random_bool(0.6) {
            core.push_str(ADJECTIVES[rng.random_range(0..ADJECTIVES.len())]);
            core.push(' ');
            core.push_str(NOUNS[rng.random_range(0..NOUNS.len())]);
        } else {
            core.push_str(COMPOUND_A[rng.random_range(0..COMPOUND_A.len())]);
            core.push_str(COMPOUND_B[rng.random_range(0..COMPOUND_B.len())]);
        }
        core.push(' ');
        core.push_str(desc);
        slug.clear();
        slug_into(&mut slug, &core);
        if attempt >= 30 {
            // Crowded name space: keep the name, make the domain unique with a number.
            let mut n = 2;
            let base = slug.clone();
            while used.contains(slug.as_str()) {
                slug.clear();
                slug.push_str(&base);
                slug.push_str(&n.to_string());
                n += 1;
            }
        }
        if !used.contains(slug.as_str()) {
            break;
        }
    }
    used.insert(slug.clone().into_boxed_str());
    let tlds = COUNTRIES[country].tlds;
    let tld = tlds[rng.random_range(0..tlds.len())];
    let mut domain = slug;
    domain.push('.');
    domain.push_str(tld);
    CompanyName {
        core,
        domain,
        country,
    }
}

/// The account name in the CRM of record: core plus the country's legal suffix (sometimes none).
pub fn legal_name<R: Rng + ?Sized>(rng: &mut R, core: &str, country: usize) -> String {
    let legal = COUNTRIES[country].legal;
    let suffix = legal[rng.random_range(0..legal.len())];
    if suffix.is_empty() || rng.random_bool(0.25) {
        core.to_string()
    } else {
        format!("{core} {suffix}")
    }
}

/// How a second CRM spells the same company: the same name, another legal form, or shouting.
pub fn name_variant<R: Rng + ?Sized>(rng: &mut R, core: &str, original: &str) -> String {
    match rng.random_range(0..6u8) {
        0 => original.to_string(),
        1 => format!("{core} Corp"),
        2 => format!("{core} Corporation, Inc."),
        3 => core.to_uppercase(),
        4 => core.to_string(),
        _ => match core.split_once(' ') {
            Some((first, _)) if first.len() > 3 => first.to_uppercase(),
            _ => format!("{core}, Inc."),
        },
    }
}

/// A person: indices into [`FIRST_NAMES`] and [`LAST_NAMES`].
#[derive(Clone, Copy)]
pub struct Person {
    pub first: u16,
    pub last: u16,
}

impl Person {
    pub fn draw<R: Rng + ?Sized>(rng: &mut R) -> Person {
        Person {
            first: rng.random_range(0..FIRST_NAMES.len()) as u16,
            last: rng.random_range(0..LAST_NAMES.len()) as u16,
        }
    }

    pub fn first_name(self) -> &'static str {
        FIRST_NAMES[usize::from(self.first)]
    }

    pub fn last_name(self) -> &'static str {
        LAST_NAMES[usize::from(self.last)]
    }

    pub fn full_name(self) -> String {
        format!("{} {}", self.first_name(), self.last_name())
    }

    /// Writes the local part of an email address in one of the common corporate styles
    /// (`style` 0: first.last, 1: flast, 2: first).
    pub fn email_local_into(self, out: &mut String, style: u8) {
        match style {
            0 => {
                slug_into(out, self.first_name());
                out.push('.');
                slug_into(out, self.last_name());
            }
            1 => {
                let mut first = String::new();
                slug_into(&mut first, self.first_name());
                out.push_str(first.get(..1).unwrap_or("x"));
                slug_into(out, self.last_name());
            }
            _ => slug_into(out, self.first_name()),
        }
    }
}
