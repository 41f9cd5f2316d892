// Word lists for the seeded catalog. Some entries carry the quirks real exports have:
// commas and double quotes inside quoted fields, and non-ASCII text.

export const ADJECTIVES = [
  "Camo", "Bright Future", "Morning Joy", "Slacker's", "Heir Force", "Pumped Up", "Infinity",
  "Bold", "Classic", "Summer", "Winter", "Urban", "Retro", "Vintage", "Sleek", "Rugged",
  "Featherlight", "Everyday", "Weekend", "Trail", "Harbor", "Midnight", "Golden", "Coastal",
  "Crème", "Über", "Naïve", "Señor", "Fjällräven-ish", "Zürich", "Café", "Ångström",
  "東京", "Kōbe", "Łódź", "Smörgås", "Ça Va", "Hygge", "Piñata", "Jalapeño",
];

export const NOUNS = [
  "Onesie", "Sunglasses", "Joggers", "Slacks", "Kicks", "Jacket", "Hoodie", "Beanie", "Boots",
  "Sneakers", "Cap", "Scarf", "Gloves", "Backpack", "Tote", "Parka", "Cardigan", "Tee", "Shorts",
  "Socks", "Loafers", "Sandals", "Blazer", "Vest", "Overalls", "Windbreaker", "Poncho", "Romper",
];

export const NAME_SUFFIXES = ["", "", "", "", "", "", " 2.0", " Pro", " ✨", " 🔥", " (Limited)", " — Edition"];

export const CATEGORIES = [
  "Jackets", "Accessories", "Pants", "Kicks", "Dress Shoes", "Shirts", "Hats", "Bags",
  "Shorts", "Sweaters", "Outerwear", "Basics", "Footwear", "Activewear",
];

export const SLOGANS = [
  "Blend in to your crowd",
  "You've got to wear shades",
  "Make yourself a morning person",
  "Comfortable for everything, or nothing",
  "I'd rather be sleeping, honestly",
  "The \"it\" piece of the season",
  "Rain or shine, we've got you",
  "Built for the long haul",
  "Less is more, more or less",
  "Prêt-à-porter, prêt-à-partir",
  "Walk tall, walk far",
  "Stay cool — stay warm",
];

export const SENTENCES = [
  "The So Fatigues will wake you up and fit you in.",
  "This high energy camo will have you blending in to even the wildest surroundings.",
  "Where you're going you might not need roads, but you definitely need some shades.",
  "Give those baby blues a rest and let the future shine bright on these timeless lenses.",
  "I know, I know, it's been said a million times: \"comfort is king\".",
  "Soft, breathable, and cut for movement.",
  "Stitched by hand, washed twice, and ready on day one.",
  "Fits true to size; if in doubt, size up.",
  "Pairs with everything from jeans to a 3-piece suit.",
  "Made with 100% organic cotton, no compromises.",
  "Features a 5\" inseam and deep pockets.",
  "Water-resistant, wind-resistant, and mostly cat-resistant.",
  "Our best seller, now in six new colours.",
  "Designed in Zürich, tested in the Alps, loved in Tōkyō.",
  "Crafted with care — and a little bit of attitude.",
  "Machine wash cold, tumble dry low, iron never.",
  "The \"everyday\" shoe, reimagined.",
  "Lightweight, packable, and ready for the road.",
];

export const FEATURES: readonly (readonly [string, readonly string[]])[] = [
  ["Fabric", ["Canvas", "100% Cotton", "Denim", "Linen, washed", "Merino Wool", "Recycled Polyester"]],
  ["Buttons", ["Brass", "Wood", "Horn", "Mother-of-pearl"]],
  ["Lenses", ["Ultrasheen", "Polarized", "Mirrored \"ice\" tint"]],
  ["UV Protection", ["null", "UV400"]],
  ["Frames", ["LightCompose", "Titanium", "Acetate"]],
  ["Sole", ["Rubber", "FullControlSkin", "Vibram®"]],
  ["Material", ["FullControlSkin", "Suede", "Nubuck", "Knit"]],
  ["Stitching", ["Double Stitch", "Cross Stitch", "null"]],
  ["Cut", ["Loose", "Skinny", "Relaxed, tapered"]],
  ["Green Leaf Certified", ["null"]],
  ["Satisfaction Guaranteed", ["null"]],
  ["Made In", ["Portugal", "Việt Nam", "Türkiye", "USA"]],
];

export const STYLE_NAMES = [
  "Forest Green & Black", "Desert Brown & Tan", "Ocean Blue & Grey", "Digital Red & Black",
  "Sky Blue & White", "Dark Grey & Black", "Black Lenses & Black Frame", "Black Lenses & Gold Frame",
  "Crème Brûlée", "Navy, Red & White", "Charcoal", "Heather Grey", "Rosé", "Olive",
  "Mustard", "Burgundy", "Off-White", "Midnight \"Noir\"",
];

export const CLOTHING_SIZES = ["XS", "S", "M", "L", "XL", "XXL"];
export const SHOE_SIZES = ["7", "7.5", "8", "8.5", "9", "9.5", "10", "10.5", "11", "11.5", "12"];

/** A CSV field in double quotes, inner quotes doubled. */
export function quote(text: string): string {
  return `"${text.replaceAll('"', '""')}"`;
}
