"""kekong's tag vocabulary for `kekong prompt expand`: the tags diffusion models respond to, in
categories. Written by the project: word lists, plus a few regular combinations (colour ×
garment, place × time of day…) that taggers use as single tags."""

from __future__ import annotations

from functools import lru_cache

COLOURS = ("red", "blue", "green", "yellow", "orange", "purple", "pink", "white", "black", "grey", "brown",
           "gold", "silver", "teal", "navy", "beige")
HAIR_COLOURS = ("blonde", "brown", "black", "red", "white", "silver", "grey", "pink", "blue", "green", "purple",
                "orange", "auburn", "platinum blonde", "multicoloured")
EYE_COLOURS = ("blue", "green", "brown", "red", "yellow", "purple", "grey", "golden", "amber", "pink", "black",
               "heterochromia")
GARMENTS = ("dress", "shirt", "t-shirt", "jacket", "coat", "hoodie", "sweater", "skirt", "pants", "jeans", "shorts",
            "scarf", "hat", "cap", "boots", "shoes", "sneakers", "gloves", "kimono", "uniform", "suit", "tie",
            "cape", "cloak", "robe", "vest", "blouse", "leggings", "socks", "bikini")
MATERIALS = ("leather", "silk", "denim", "wool", "lace", "velvet", "cotton", "fur", "latex", "knitted")
PATTERNS = ("striped", "plaid", "polka dot", "floral", "checkered", "camouflage", "paisley", "argyle")
PATTERNED = ("dress", "shirt", "skirt", "scarf", "jacket", "sweater", "pants", "kimono", "blouse", "socks",
             "tie", "hat", "coat", "shorts", "vest")

CLOTHING = ("school uniform", "sailor uniform", "maid outfit", "business suit", "wedding dress", "evening gown",
            "sundress", "raincoat", "trench coat", "armor", "plate armor", "power armor", "spacesuit",
            "military uniform", "police uniform", "nurse outfit", "chef uniform", "lab coat", "overalls",
            "tracksuit", "swimsuit", "pajamas", "bathrobe", "poncho", "cardigan", "turtleneck", "crop top",
            "tank top", "miniskirt", "pleated skirt", "ball gown", "tuxedo", "hanfu", "qipao", "yukata",
            "sari", "dirndl", "toga", "apron", "sweatpants")
ACCESSORIES = ("glasses", "sunglasses", "earrings", "necklace", "bracelet", "ring", "choker", "wristwatch",
               "headphones", "hair ribbon", "hair bow", "hairband", "hairpin", "crown", "tiara", "mask",
               "face mask", "eyepatch", "backpack", "handbag", "umbrella", "parasol", "sword", "staff", "wand",
               "shield", "bow and arrow", "book", "camera", "phone", "lantern", "flower crown", "veil",
               "belt", "bandana", "beret", "top hat", "witch hat", "helmet", "goggles", "wings", "halo",
               "cat ears", "fox ears", "horns", "tail", "bouquet", "teddy bear", "guitar", "microphone")
HAIRSTYLES = ("long hair", "short hair", "medium hair", "very long hair", "ponytail", "twintails", "braid",
              "twin braids", "bun", "double bun", "bob cut", "pixie cut", "curly hair", "wavy hair",
              "straight hair", "messy hair", "hair over one eye", "bangs", "blunt bangs", "side ponytail",
              "ahoge", "bald", "mohawk", "dreadlocks", "afro", "undercut", "hime cut", "wet hair",
              "windblown hair", "floating hair")

SUBJECTS = ("1girl", "1boy", "2girls", "2boys", "multiple girls", "multiple boys", "solo", "couple", "family",
            "crowd", "woman", "man", "girl", "boy", "old woman", "old man", "young woman", "young man", "child",
            "baby", "teenager", "elderly", "knight", "samurai", "ninja", "wizard", "witch", "elf", "dwarf", "orc",
            "vampire", "angel", "demon", "fairy", "mermaid", "pirate", "cowboy", "soldier", "astronaut",
            "scientist", "doctor", "nurse", "chef", "detective", "princess", "prince", "queen", "king",
            "maid", "idol", "dancer", "ballerina", "musician", "painter", "student", "teacher", "office worker",
            "robot", "android", "cyborg", "mecha", "monster", "dragon", "ghost", "zombie", "skeleton", "golem",
            "unicorn", "phoenix", "griffin", "kitsune", "centaur", "cat", "kitten", "dog", "puppy", "fox", "wolf",
            "bear", "panda", "red panda", "rabbit", "deer", "horse", "lion", "tiger", "leopard", "cheetah",
            "elephant", "giraffe", "zebra", "monkey", "gorilla", "owl", "eagle", "hawk", "crow", "raven",
            "parrot", "penguin", "swan", "duck", "chicken", "butterfly", "bee", "dragonfly", "spider",
            "snake", "lizard", "turtle", "frog", "fish", "koi", "shark", "whale", "dolphin", "octopus",
            "jellyfish", "crab", "hamster", "squirrel", "hedgehog", "otter", "seal", "camel", "cow", "pig",
            "sheep", "goat", "car", "sports car", "motorcycle", "bicycle", "train", "airplane", "helicopter",
            "ship", "sailboat", "submarine", "spaceship", "tank", "bus", "truck", "hot air balloon",
            "castle", "tower", "lighthouse", "cathedral", "temple", "shrine", "pagoda", "pyramid", "bridge",
            "windmill", "cottage", "mansion", "skyscraper", "ruins", "statue", "fountain", "clock tower",
            "tree", "oak tree", "cherry tree", "palm tree", "pine tree", "willow tree", "flower", "rose",
            "tulip", "sunflower", "lily", "lotus", "orchid", "daisy", "lavender", "cherry blossoms",
            "mushroom", "cactus", "fern", "moss", "vines", "apple", "cake", "coffee", "tea", "sushi",
            "ramen", "pizza", "bread", "fruit", "candy", "ice cream", "wine glass", "teacup", "candle",
            "crystal", "gemstone", "skull", "mirror", "clock", "key", "map", "globe", "potion", "treasure chest")
POSES = ("standing", "sitting", "kneeling", "lying", "lying on back", "lying on side", "crouching", "squatting",
         "walking", "running", "jumping", "flying", "floating", "falling", "dancing", "fighting", "stretching",
         "leaning forward", "leaning back", "leaning against wall", "arms up", "arms raised", "arms crossed",
         "arms behind back", "arm behind head", "hands on hips", "hands in pockets", "hand on chest",
         "hand on cheek", "hands together", "praying", "waving", "pointing", "peace sign", "thumbs up",
         "outstretched arms", "reaching out", "holding hands", "hugging", "kissing", "carrying", "holding",
         "holding umbrella", "holding sword", "holding book", "holding flower", "holding cup", "reading",
         "writing", "drawing", "singing", "playing guitar", "playing piano", "eating", "drinking", "sleeping",
         "looking at viewer", "looking away", "looking back", "looking up", "looking down", "looking to the side",
         "from behind", "profile", "three-quarter view", "head tilt", "crossed legs", "legs up", "on one knee",
         "seiza", "indian style", "on stomach", "bent over", "walking away", "turning around", "mid-air",
         "action pose", "dynamic pose", "contrapposto", "fighting stance", "casting spell", "riding horse",
         "riding bicycle", "swimming", "diving", "climbing", "skating", "skiing", "surfing", "meditating",
         "yoga pose", "spread arms", "hand up", "hand over mouth", "covering face", "adjusting hair",
         "tying hair", "wiping tears", "blowing kiss", "saluting", "bowing", "shrugging", "sitting on chair",
         "sitting on floor", "sitting on bench", "sitting on bed", "sitting in window", "leaning on railing",
         "standing in water", "walking in the rain", "walking on street", "running through field")
EXPRESSIONS = ("smile", "smiling", "grin", "laughing", "open mouth", "closed mouth", "closed eyes", "one eye closed",
               "wink", "blush", "light blush", "crying", "tears", "sad", "melancholic", "lonely", "angry",
               "furious", "frown", "pout", "surprised", "shocked", "scared", "worried", "nervous", "embarrassed",
               "shy", "confident", "smug", "serious", "expressionless", "calm", "peaceful", "sleepy", "tired",
               "bored", "excited", "happy", "joyful", "cheerful", "determined", "thoughtful", "dreamy",
               "gentle smile", "evil smile", "smirk", "tongue out", "teeth", "fangs", "half-closed eyes",
               "wide-eyed", "glaring", "looking longingly", "nostalgic", "hopeful", "mysterious", "seductive",
               "playful", "innocent", "stoic", "gloomy", "heartbroken", "relieved", "proud", "curious", "dazed",
               "crazy eyes", "sparkling eyes", "teary eyes", "parted lips")
PLACES = ("forest", "dark forest", "bamboo forest", "rainforest", "jungle", "meadow", "flower field", "wheat field",
          "grassland", "savanna", "desert", "oasis", "canyon", "mountains", "mountain peak", "valley", "hill",
          "cliff", "cave", "volcano", "glacier", "tundra", "lake", "river", "waterfall", "pond", "swamp", "beach",
          "ocean", "sea", "coast", "island", "coral reef", "underwater", "city", "cityscape", "city street",
          "alley", "back alley", "downtown", "rooftop", "skyline", "neon city", "cyberpunk city", "village",
          "town square", "market", "harbor", "train station", "subway", "airport", "bus stop", "highway",
          "parking lot", "park", "garden", "japanese garden", "greenhouse", "courtyard", "street", "crosswalk",
          "bridge over river", "classroom", "school hallway", "library", "office", "cafe", "restaurant",
          "bar", "kitchen", "bedroom", "living room", "bathroom", "attic", "basement", "hospital", "laboratory",
          "museum", "art gallery", "theater", "concert stage", "stadium", "gym", "church interior", "throne room",
          "castle interior", "dungeon", "ballroom", "shrine grounds", "temple courtyard", "graveyard",
          "ruined city", "post-apocalyptic city", "battlefield", "space station", "spaceship interior",
          "outer space", "alien planet", "moon surface", "starry sky", "sky", "clouds", "above the clouds",
          "floating island", "fantasy world", "fairy tale forest", "enchanted forest", "magical forest",
          "haunted house", "abandoned building", "factory", "warehouse", "construction site", "farm", "barn",
          "vineyard", "orchard", "countryside", "suburbs", "snowy mountains", "frozen lake", "ice cave",
          "autumn forest", "spring garden", "summer beach", "winter village", "night city", "rainy street",
          "foggy forest", "misty mountains", "sunflower field", "lavender field", "rice paddy", "pier",
          "boardwalk", "lighthouse on cliff", "window", "balcony", "staircase", "corridor", "train interior",
          "car interior", "bathtub", "pool", "hot spring", "onsen", "festival", "fireworks festival",
          "amusement park", "carnival", "shopping mall", "bookstore", "flower shop", "bakery", "studio",
          "photo studio", "simple background", "white background", "black background", "gradient background",
          "abstract background", "blurry background", "bokeh background", "indoors", "outdoors")
TIMES = ("at dawn", "in the morning", "at noon", "in the afternoon", "at sunset", "at dusk", "at night",
         "at midnight")
TIME_PLACES = ("forest", "city", "beach", "mountains", "lake", "street", "village", "desert", "field", "harbor",
               "rooftop", "park", "river", "castle", "garden", "ocean", "temple", "bridge", "meadow", "skyline")
SEASONS = ("spring", "summer", "autumn", "winter")
SEASON_PLACES = ("forest", "garden", "park", "village", "mountains", "lake", "field", "street", "river", "city",
                 "meadow", "countryside", "orchard", "shrine", "valley", "road", "campus", "beach", "hills", "woods")
LIGHTING = ("sunlight", "dappled sunlight", "sunbeam", "god rays", "light rays", "rim light", "backlighting",
            "soft lighting", "hard lighting", "dramatic lighting", "cinematic lighting", "studio lighting",
            "natural light", "ambient light", "volumetric lighting", "volumetric fog", "golden hour", "blue hour",
            "moonlight", "candlelight", "firelight", "lamplight", "neon lights", "neon glow", "city lights",
            "street lights", "fairy lights", "lantern light", "glowing", "bioluminescence", "lens flare",
            "chromatic aberration", "bloom", "high contrast", "low key lighting", "high key lighting",
            "chiaroscuro", "silhouette", "shadow", "long shadows", "reflections", "caustics", "sunset glow",
            "twilight", "overcast light", "harsh sunlight", "warm lighting", "cold lighting", "colorful lights",
            "spotlight", "stage lights", "light particles", "sparkles", "glitter", "light leaks", "backlit hair",
            "subsurface scattering", "global illumination", "ray tracing")
WEATHER = ("rain", "heavy rain", "light rain", "drizzle", "raindrops", "wet", "puddles", "storm", "thunderstorm",
           "lightning", "snow", "snowing", "snowfall", "blizzard", "snowflakes", "fog", "mist", "haze", "cloudy",
           "overcast", "clear sky", "blue sky", "sunny", "rainbow", "wind", "windy", "falling leaves",
           "falling petals", "cherry blossom petals", "autumn leaves", "dust", "sandstorm", "hail", "frost",
           "icicles", "humid", "after the rain", "monsoon", "aurora", "northern lights", "shooting star",
           "meteor shower", "full moon", "crescent moon", "eclipse", "starry night", "night sky", "sunrise",
           "sunset", "dark clouds", "storm clouds", "cumulonimbus", "smoke", "embers", "fireflies", "bubbles")
STYLES = ("anime", "anime style", "manga", "cartoon", "comic", "webtoon", "chibi", "realistic", "photorealistic",
          "hyperrealistic", "semi-realistic", "fantasy", "dark fantasy", "high fantasy", "science fiction",
          "cyberpunk", "steampunk", "dieselpunk", "solarpunk", "vaporwave", "synthwave", "retro", "vintage",
          "1980s style", "1990s style", "art nouveau", "art deco", "baroque", "rococo", "renaissance",
          "gothic", "victorian", "medieval", "impressionism", "expressionism", "surrealism", "cubism",
          "pop art", "minimalism", "abstract", "ukiyo-e", "chinese painting", "ink wash painting", "pixel art",
          "low poly", "isometric", "concept art", "matte painting", "character design", "fashion illustration",
          "children's book illustration", "storybook", "fairy tale", "whimsical", "cute", "kawaii", "moe",
          "horror", "eerie", "creepy", "dreamlike", "ethereal", "mystical", "magical", "epic", "grand",
          "cinematic", "film still", "movie poster", "album cover", "book cover", "cozy", "melancholy",
          "noir", "film noir", "gritty", "post-apocalyptic", "dystopian", "utopian", "futuristic", "ancient",
          "traditional", "modern", "contemporary", "tribal", "folk art", "psychedelic", "glitch art",
          "vector art", "flat design", "line art", "lineart", "sketch", "doodle", "graphic novel",
          "cel shading", "soft shading", "painterly", "studio ghibli style", "disney style", "pixar style",
          "claymation", "stop motion", "papercut", "paper art", "origami", "stained glass", "mosaic",
          "graffiti", "street art", "tattoo design", "sticker", "emblem", "logo", "icon", "monochrome",
          "greyscale", "sepia", "black and white", "limited palette", "pastel colors", "vibrant colors",
          "muted colors", "neon colors", "warm colors", "cool colors", "colorful", "high saturation",
          "desaturated", "duotone", "spot color")
MEDIUMS = ("oil painting", "watercolor", "watercolor painting", "acrylic painting", "gouache", "pastel drawing",
           "charcoal drawing", "pencil drawing", "colored pencil", "ink drawing", "pen and ink", "marker drawing",
           "crayon drawing", "digital painting", "digital art", "3d render", "octane render", "unreal engine",
           "blender render", "cgi", "photograph", "photo", "polaroid", "film photography", "35mm film",
           "analog photo", "instant photo", "daguerreotype", "sculpture", "clay sculpture", "bronze statue",
           "marble statue", "wood carving", "embroidery", "tapestry", "fresco", "mural", "woodcut", "linocut",
           "etching", "lithograph", "screen print", "collage", "mixed media", "airbrush", "spray paint",
           "chalk drawing", "blueprint", "technical drawing", "infographic", "scientific illustration",
           "botanical illustration", "map illustration", "tarot card", "playing card", "poster", "postcard",
           "magazine cover", "newspaper", "comic panel", "storyboard", "animation cel", "game screenshot",
           "trading card", "figurine", "plush toy", "lego", "miniature", "diorama", "tilt-shift")
CAMERA = ("close-up", "extreme close-up", "portrait", "headshot", "upper body", "cowboy shot", "full body",
          "wide shot", "long shot", "medium shot", "establishing shot", "from above", "from below", "from side",
          "bird's eye view", "aerial view", "worm's eye view", "dutch angle", "low angle", "high angle",
          "eye level", "over the shoulder", "pov", "first person view", "selfie", "candid", "symmetrical",
          "centered", "rule of thirds", "depth of field", "shallow depth of field", "bokeh", "blurry foreground",
          "motion blur", "long exposure", "fisheye lens", "wide angle lens", "telephoto lens", "macro",
          "macro photography", "panorama", "cinematic shot", "film grain", "vignette", "sharp focus",
          "soft focus", "out of focus", "split screen", "multiple views", "reference sheet", "turnaround",
          "character sheet", "landscape", "scenery", "still life", "food photography", "product photo",
          "street photography", "fashion photography", "wildlife photography", "astrophotography",
          "underwater photography", "night photography", "hdr", "8k", "4k", "uhd", "dslr", "bokeh lights",
          "silhouette shot", "reflection in water", "mirror reflection", "framing", "negative space")
FOCAL_LENGTHS = ("14mm", "24mm", "35mm", "50mm", "85mm", "135mm", "200mm", "400mm")
QUALITY = ("masterpiece", "best quality", "high quality", "highly detailed", "extremely detailed", "ultra detailed",
           "intricate details", "fine details", "detailed background", "detailed face", "detailed eyes",
           "beautiful detailed eyes", "detailed hands", "absurdres", "highres", "high resolution", "sharp",
           "crisp", "award winning", "trending on artstation", "professional", "official art", "illustration",
           "beautiful", "aesthetic", "stunning", "gorgeous", "elegant", "atmospheric", "moody", "vivid",
           "clean lines", "smooth", "polished", "perfect lighting", "perfect composition", "detailed texture",
           "realistic skin", "depth", "volumetric", "lowres", "worst quality", "low quality", "blurry",
           "jpeg artifacts", "bad anatomy", "bad hands", "extra fingers", "watermark", "signature", "text")
FLOWERS = ("rose", "tulip", "lily", "daisy", "orchid", "peony", "carnation", "hydrangea", "camellia", "chrysanthemum")
FLOWER_COLOURS = ("red", "white", "pink", "yellow", "blue", "purple")
LIGHT_FORMS = ("{} light", "{} lighting", "{} glow")
ANIMAL_COLOURS = ("black", "white", "orange", "grey", "brown", "golden", "spotted", "striped")
PETS = ("cat", "kitten", "dog", "puppy", "wolf", "fox", "horse", "rabbit", "bird", "dragon", "owl", "snake")
MAIN_HAIRSTYLES = ("ponytail", "twintails", "braid", "bob cut", "bun", "curly hair", "wavy hair", "pixie cut")
ROOM_MOODS = ("cozy", "messy", "modern", "luxurious", "abandoned", "dark", "bright", "minimalist", "traditional",
              "futuristic")
ROOMS = ("bedroom", "kitchen", "living room", "library", "office", "cafe", "classroom", "bathroom", "studio",
         "hallway")
WEATHER_PLACE = ("rainy", "snowy", "foggy")
GENRES = ("portrait", "landscape", "still life", "cityscape", "seascape")
GENRE_MEDIUMS = ("oil painting", "watercolor", "pencil", "charcoal", "ink", "digital", "pastel", "acrylic",
                 "gouache", "photo")
SKY_COLOURS = ("orange sky", "pink sky", "purple sky", "red sky", "golden sky", "green sky", "dark sky",
               "cloudy sky", "starry sky at dusk", "gradient sky", "blood moon", "blue moon", "red moon",
               "giant moon", "two moons")
VEHICLES = ("car", "sports car", "motorcycle", "bicycle", "truck", "bus", "boat", "train")
VEHICLE_COLOURS = ("red", "black", "white", "blue", "yellow", "silver", "green", "orange")
MORE_FOOD = ("burger", "fries", "pasta", "salad", "soup", "curry", "dumplings", "onigiri", "bento", "tempura",
             "pancakes", "waffles", "donut", "croissant", "cupcake", "cookies", "chocolate", "macarons",
             "strawberry", "cherry", "grapes", "watermelon", "lemon", "orange fruit", "banana", "peach",
             "honey", "milk", "juice", "lemonade", "cocktail", "beer", "bubble tea", "hot chocolate",
             "popcorn", "steak", "roast chicken", "noodles", "rice bowl", "sandwich")
MORE_BEINGS = ("sorcerer", "sorceress", "paladin", "rogue", "archer", "bard", "cleric", "necromancer",
               "druid", "ranger", "valkyrie", "gladiator", "viking", "spartan", "shogun", "geisha", "monk",
               "nun", "priest", "shaman", "alchemist", "inventor", "explorer", "adventurer", "merchant",
               "farmer", "fisherman", "blacksmith", "hunter", "thief", "assassin", "mercenary", "space marine",
               "pilot", "racer", "athlete", "boxer", "martial artist", "superhero", "villain")
SCHEME_COLOURS = ("red", "blue", "green", "yellow", "purple", "orange", "pink", "black")
MATERIAL_TAGS = ("wood", "metal", "glass", "marble", "stone", "brick", "concrete", "gold trim", "silver trim",
                 "rust", "chrome", "ceramic", "porcelain", "paper", "fabric", "feathers", "scales", "crystal clear",
                 "iridescent", "holographic", "translucent", "transparent", "shiny", "matte", "glossy", "rough",
                 "weathered", "ornate", "engraved", "embroidered")
WEATHER_TIMES = (("rainy", "stormy", "foggy", "snowy", "sunny", "cloudy"), ("night", "morning", "day", "evening"))
DAY_TIMES = ("dawn", "morning", "noon", "afternoon", "evening", "dusk", "night", "midnight")
ARCHITECTURE = (("gothic", "baroque", "japanese", "chinese", "futuristic", "medieval"),
                ("castle", "cathedral", "house", "palace", "tower", "city"))
HELD = ("umbrella", "sword", "book", "flower", "cup", "phone", "camera", "lantern", "staff", "wand", "gun", "bow",
        "shield", "fan", "balloon", "bouquet", "cat", "puppy", "guitar", "microphone")
BACKGROUND_COLOURS = COLOURS


@lru_cache(maxsize=1)
def vocabulary() -> tuple[tuple[str, str], ...]:
    """(tag, category) pairs, unique tags, in a fixed order."""
    pairs: list[tuple[str, str]] = []
    pairs += [(s, "subject") for s in SUBJECTS]
    pairs += [(f"{c} {g}", "clothing") for c in COLOURS for g in GARMENTS]
    pairs += [(f"{m} {g}", "clothing") for m in MATERIALS for g in PATTERNED]
    pairs += [(f"{p} {g}", "clothing") for p in PATTERNS for g in PATTERNED]
    pairs += [(c, "clothing") for c in CLOTHING + ACCESSORIES]
    pairs += [(f"{c} hair", "subject") for c in HAIR_COLOURS]
    pairs += [(f"{length} {c} hair", "subject") for length in ("long", "short") for c in HAIR_COLOURS]
    pairs += [(h, "subject") for h in HAIRSTYLES]
    pairs += [(f"{c} eyes", "subject") for c in EYE_COLOURS]
    pairs += [(p, "pose") for p in POSES]
    pairs += [(e, "expression") for e in EXPRESSIONS]
    pairs += [(p, "setting") for p in PLACES]
    pairs += [(f"{p} {t}", "setting") for p in TIME_PLACES for t in TIMES]
    pairs += [(f"{s} {p}", "setting") for s in SEASONS for p in SEASON_PLACES]
    pairs += [(f"{c} background", "setting") for c in BACKGROUND_COLOURS]
    pairs += [(f"{c} {f}", "subject") for c in FLOWER_COLOURS for f in FLOWERS]
    pairs += [(lighting, "lighting") for lighting in LIGHTING]
    pairs += [(form.format(c), "lighting") for c in COLOURS for form in LIGHT_FORMS]
    pairs += [(w, "weather") for w in WEATHER]
    pairs += [(s, "style") for s in STYLES]
    pairs += [(m, "medium") for m in MEDIUMS]
    pairs += [(c, "camera") for c in CAMERA]
    pairs += [(f"{f} lens", "camera") for f in FOCAL_LENGTHS]
    pairs += [(q, "quality") for q in QUALITY]
    pairs += [(f"{c} {a}", "subject") for c in ANIMAL_COLOURS for a in PETS]
    pairs += [(f"{c} {h}", "subject") for c in HAIR_COLOURS for h in MAIN_HAIRSTYLES]
    pairs += [(f"glowing {c} eyes", "subject") for c in EYE_COLOURS[:-1]]
    pairs += [(f"{m} {r}", "setting") for m in ROOM_MOODS for r in ROOMS]
    pairs += [(f"{w} {p}", "setting") for w in WEATHER_PLACE for p in TIME_PLACES]
    pairs += [(f"{m} {g}", "medium") for m in GENRE_MEDIUMS for g in GENRES]
    pairs += [(s, "weather") for s in SKY_COLOURS]
    pairs += [(f"{c} {v}", "subject") for c in VEHICLE_COLOURS for v in VEHICLES]
    pairs += [(f, "subject") for f in MORE_FOOD + MORE_BEINGS]
    pairs += [(f"{c} theme", "style") for c in COLOURS]
    pairs += [(f"{a} and {b} color scheme", "style") for a in SCHEME_COLOURS for b in SCHEME_COLOURS if a != b]
    pairs += [(m, "style") for m in MATERIAL_TAGS]
    pairs += [(f"{w} {t}", "weather") for w in WEATHER_TIMES[0] for t in WEATHER_TIMES[1]]
    pairs += [(t, "weather") for t in DAY_TIMES]
    pairs += [(f"{s} {b}", "setting") for s in ARCHITECTURE[0] for b in ARCHITECTURE[1]]
    pairs += [(f"holding {h}", "pose") for h in HELD]
    seen: set[str] = set()
    unique = []
    for tag, category in pairs:
        if tag not in seen:
            seen.add(tag)
            unique.append((tag, category))
    return tuple(unique)


NEGATIVE_QUALITY = frozenset({"lowres", "worst quality", "low quality", "blurry", "jpeg artifacts", "bad anatomy",
                              "bad hands", "extra fingers", "watermark", "signature", "text"})
