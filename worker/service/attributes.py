"""What each CelebA attribute edit does, in words, and the order the page shows them in."""

from __future__ import annotations

DESCRIPTIONS = {
    "Smiling": "adds a smile (negative: a neutral mouth)",
    "Male": "makes the face more masculine (negative: more feminine)",
    "Young": "makes the face younger (negative: older)",
    "Eyeglasses": "adds glasses (negative: removes them)",
    "Blond_Hair": "turns the hair blond",
    "Black_Hair": "turns the hair black",
    "Brown_Hair": "turns the hair brown",
    "Gray_Hair": "turns the hair grey",
    "Bald": "removes hair from the top of the head",
    "Bangs": "adds a fringe over the forehead",
    "Wavy_Hair": "makes the hair wavy",
    "Straight_Hair": "makes the hair straight",
    "Receding_Hairline": "moves the hairline back",
    "No_Beard": "removes the beard (negative: adds one)",
    "Goatee": "adds a goatee",
    "Mustache": "adds a moustache",
    "5_o_Clock_Shadow": "adds stubble",
    "Sideburns": "adds sideburns",
    "Heavy_Makeup": "adds heavy make-up",
    "Wearing_Lipstick": "adds lipstick",
    "Rosy_Cheeks": "makes the cheeks rosier",
    "Pale_Skin": "makes the skin paler",
    "Attractive": "moves towards faces labelled attractive in CelebA (a subjective label)",
    "Arched_Eyebrows": "arches the eyebrows",
    "Bushy_Eyebrows": "makes the eyebrows bushier",
    "Bags_Under_Eyes": "adds bags under the eyes",
    "Narrow_Eyes": "narrows the eyes",
    "Big_Lips": "makes the lips fuller",
    "Big_Nose": "makes the nose bigger",
    "Pointy_Nose": "makes the nose pointier",
    "High_Cheekbones": "raises the cheekbones",
    "Mouth_Slightly_Open": "opens the mouth slightly",
    "Chubby": "makes the face rounder and fuller",
    "Double_Chin": "adds a double chin",
    "Oval_Face": "makes the face more oval",
    "Wearing_Hat": "adds a hat",
    "Wearing_Earrings": "adds earrings",
    "Wearing_Necklace": "adds a necklace",
    "Wearing_Necktie": "adds a necktie",
    "Blurry": "blurs the photo",
}
ORDER = list(DESCRIPTIONS)  # most useful first


def describe(name: str) -> str:
    return DESCRIPTIONS.get(name, name.replace("_", " ").lower())
