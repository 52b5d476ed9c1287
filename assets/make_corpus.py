#!/usr/bin/env python3
"""Write ``corpus.txt``: the bundled English text that language models are fed by default.

    python -m workbench.assets.make_corpus [--out DIR] [--kb 420]

The text is generated here, from word lists and sentence patterns written for this project (so it
is under the project's own license, Apache-2.0, and owes nothing to anyone): short stories with a
consistent cast, dialogues, letters, weather diaries, facts about animals (the same facts every
time), recipes, calendars and small sums written out in words. Paragraphs are separated by one
blank line. The generator is seeded: the same seed and size give the same file, byte for byte.

What makes it useful for measuring a language model: most of each paragraph can be predicted
from its context (a name introduced early comes back, a pronoun agrees with it, Tuesday follows
Monday, a cow says moo), so a trained model's perplexity is far below a unigram model's, and
anything that damages the model (quantization, pruning) shows up as a higher perplexity.
"""
from __future__ import annotations

import argparse
import pathlib
import random

SEED = 0
DEFAULT_KB = 420
FILE_NAME = "corpus.txt"

# (name, subject pronoun, object pronoun, possessive)
PEOPLE = [(n, "she", "her", "her") for n in (
    "Anna", "Mia", "Lucy", "Emma", "Sara", "Nora", "Lily", "Rosa", "Ella", "Maya", "Ida", "Julia",
    "Hana", "Clara", "Eva", "Zoe", "Amy", "Grace", "Alice", "Ruth")] + \
    [(n, "he", "him", "his") for n in (
        "Tom", "Ben", "Sam", "Leo", "Max", "Jack", "Paul", "Omar", "Finn", "Hugo", "Ivan", "Theo",
        "Luke", "Noah", "Oscar", "Felix", "Adam", "Carl", "Dan", "Eli")]
# animal -> (plural, sound, home, food, one fact)
ANIMALS = {
    "cat": ("cats", "meow", "houses", "fish", "cats sleep for most of the day"),
    "dog": ("dogs", "woof", "houses", "meat", "dogs can follow a smell for miles"),
    "cow": ("cows", "moo", "fields", "grass", "cows give milk every morning"),
    "duck": ("ducks", "quack", "ponds", "seeds", "ducks keep dry because of the oil on their feathers"),
    "horse": ("horses", "neigh", "stables", "hay", "horses can sleep standing up"),
    "sheep": ("sheep", "baa", "hills", "grass", "sheep grow a new coat of wool every year"),
    "pig": ("pigs", "oink", "farms", "corn", "pigs roll in mud to stay cool"),
    "owl": ("owls", "hoot", "trees", "mice", "owls hunt at night"),
    "frog": ("frogs", "croak", "ponds", "flies", "frogs start their lives as tadpoles"),
    "bee": ("bees", "buzz", "hives", "nectar", "bees make honey from the nectar of flowers"),
    "lion": ("lions", "roar", "grasslands", "meat", "lions live in groups called prides"),
    "mouse": ("mice", "squeak", "walls", "cheese", "mice have teeth that never stop growing"),
    "goat": ("goats", "bleat", "mountains", "leaves", "goats can climb steep rocks"),
    "hen": ("hens", "cluck", "coops", "grain", "hens lay eggs"),
    "wolf": ("wolves", "howl", "forests", "meat", "wolves hunt together in packs"),
    "bear": ("bears", "growl", "caves", "berries", "bears sleep through the winter"),
    "fox": ("foxes", "yip", "dens", "rabbits", "foxes have very good hearing"),
    "crow": ("crows", "caw", "trees", "seeds", "crows are clever birds that remember faces"),
}
ADJ_SIZE = ["small", "little", "big", "tall", "tiny", "large", "young", "old"]
ADJ_LOOK = ["brown", "white", "black", "gray", "red", "golden", "spotted", "striped", "fluffy", "shiny"]
ADJ_MOOD = ["happy", "sleepy", "brave", "shy", "curious", "kind", "clever", "grumpy", "friendly", "quiet"]
FEELINGS = ["happy", "sad", "scared", "excited", "tired", "proud", "surprised", "worried", "calm", "angry"]
PLACES = [("a small village", "the village"), ("a busy town", "the town"), ("a quiet farm", "the farm"),
          ("a house by the sea", "the house"), ("a cabin in the woods", "the cabin"),
          ("a flat above a bakery", "the flat"), ("a cottage on a hill", "the cottage"),
          ("a big city", "the city"), ("a boat on the river", "the boat"), ("a tent in the park", "the tent")]
SPOTS = ["the river", "the old bridge", "the market", "the school", "the library", "the forest",
         "the beach", "the garden", "the hill", "the lake", "the park", "the station", "the meadow",
         "the harbor", "the playground", "the orchard"]
THINGS = ["ball", "kite", "box", "key", "map", "hat", "book", "cup", "shell", "stone", "coin", "letter",
          "lamp", "bell", "basket", "ribbon", "feather", "clock", "spoon", "drum", "blanket", "boot"]
CONTAINERS = ["under the bed", "behind the door", "in the garden", "on the roof", "in the kitchen",
              "under a tree", "next to the well", "in the attic", "on the shelf", "by the fence"]
FOODS = ["apples", "bread", "soup", "cake", "pears", "rice", "cheese", "plums", "eggs", "carrots",
         "cookies", "pancakes", "beans", "cherries", "potatoes", "oranges", "noodles", "pie"]
GAMES = ["play tag", "read books", "draw pictures", "build sand castles", "ride a bike", "fly a kite",
         "swim in the lake", "climb trees", "sing songs", "plant flowers", "bake bread", "count the stars",
         "look for shells", "watch the boats", "feed the ducks", "paint the fence", "play the drum"]
WEATHER = ["sunny", "rainy", "windy", "cloudy", "foggy", "snowy", "warm", "cold", "stormy", "clear"]
WEATHER_NOTE = {
    "sunny": "The sky was blue all day.", "rainy": "The streets were wet and shining.",
    "windy": "The trees bent in the wind.", "cloudy": "Gray clouds hid the sun.",
    "foggy": "Nobody could see the end of the road.", "snowy": "Snow covered the roofs.",
    "warm": "People sat outside in the evening.", "cold": "Everyone wore a coat and a scarf.",
    "stormy": "Thunder rolled over the hills.", "clear": "At night the stars were bright.",
}
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
SEASON_OF = {m: s for s, ms in (("winter", (11, 0, 1)), ("spring", (2, 3, 4)), ("summer", (5, 6, 7)),
                                ("autumn", (8, 9, 10))) for i in ms for m in [MONTHS[i]]}
NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
           "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]
DISHES = {
    "apple pie": ["flour", "butter", "apples", "sugar"], "vegetable soup": ["carrots", "onions", "potatoes", "salt"],
    "pancakes": ["flour", "milk", "eggs", "butter"], "fruit salad": ["apples", "pears", "grapes", "honey"],
    "bread": ["flour", "water", "yeast", "salt"], "rice pudding": ["rice", "milk", "sugar", "cinnamon"],
    "tomato sauce": ["tomatoes", "garlic", "onions", "oil"], "lemonade": ["lemons", "water", "sugar", "ice"],
}
STEP_VERBS = ["wash", "cut", "mix", "stir", "warm", "add", "pour", "slice"]
COLOR_FACTS = [("the sky", "blue"), ("grass", "green"), ("snow", "white"), ("a ripe banana", "yellow"),
               ("a ripe tomato", "red"), ("coal", "black"), ("an orange", "orange"), ("a plum", "purple")]


def person(rng: random.Random, avoid: tuple = ()) -> tuple:
    return rng.choice([p for p in PEOPLE if p[0] not in avoid])


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def story(rng: random.Random) -> str:
    name, he, him, his = person(rng)
    friend, fhe, _fhim, _fhis = person(rng, (name,))
    animal = rng.choice(list(ANIMALS))
    plural, sound, _home, food, _fact = ANIMALS[animal]
    place, the_place = rng.choice(PLACES)
    spot = rng.choice(SPOTS)
    thing = rng.choice(THINGS)
    s = []
    opening = rng.choice([
        f"Once upon a time, there was {a(rng.choice(ADJ_MOOD))} {rng.choice(['girl', 'child']) if he == 'she' else rng.choice(['boy', 'child'])} named {name}.",
        f"{name} lived in {place}.", f"There once was {a(rng.choice(ADJ_SIZE))} {animal} who lived with {name}.",
        f"Every morning, {name} walked to {spot}.", f"{name} had {a(rng.choice(ADJ_LOOK))} {thing} that {he} loved very much."])
    s.append(opening)
    if not opening.startswith(f"{name} lived"):
        s.append(f"{cap(he)} lived in {place} with {his} {rng.choice(['mother', 'father', 'grandmother', 'grandfather', 'aunt', 'uncle'])}.")
    s.append(f"{name} had a pet {animal}. The {animal} liked to eat {food} and to say \"{sound}\".")
    s.append(f"{name}'s best friend was {friend}. Together they liked to {rng.choice(GAMES)}.")
    day = rng.choice(DAYS)
    weather = rng.choice(WEATHER)
    s.append(rng.choice([f"One {weather} {day}, {name} and {friend} went to {spot}.",
                         f"On {day}, the weather was {weather}, so {name} went to {spot} with {friend}.",
                         f"One day, {name} could not find {his} {thing}."]))
    problem = rng.randrange(4)
    if problem == 0:
        where = rng.choice(CONTAINERS)
        s.append(f"{cap(he)} looked everywhere for {his} {thing}. {cap(he)} looked {rng.choice(CONTAINERS)}, but it was not there.")
        s.append(f"Then {friend} had an idea. \"Let us ask the {animal},\" {fhe} said.")
        s.append(f"The {animal} said \"{sound}\" and ran {where}. There was the {thing}!")
        s.append(f"{name} was so {rng.choice(['happy', 'glad', 'relieved'])}. {cap(he)} gave the {animal} some {food}.")
    elif problem == 1:
        s.append(f"At {spot} they saw {a(rng.choice(ADJ_SIZE))} {rng.choice(list(ANIMALS))} that was {rng.choice(['lost', 'stuck', 'hungry', 'cold'])}.")
        s.append(f"{name} felt {rng.choice(['sorry for it', 'worried'])}. \"We have to help,\" {he} said.")
        s.append(f"{friend} shared {rng.choice(FOODS)} with it, and {name} showed it the way home.")
        s.append(f"After that, the animal came to visit {name} every {rng.choice(DAYS)}.")
    elif problem == 2:
        s.append(f"Suddenly, it started to rain. {name} and {friend} ran under {rng.choice(['a big tree', 'the bridge', 'a red umbrella', 'the roof of a shop'])}.")
        s.append(f"They waited and told each other stories about {plural}.")
        s.append(f"When the rain stopped, they saw a rainbow over {spot}. \"Look!\" said {friend}.")
        s.append(f"{name} smiled. It was the best {day} of the {rng.choice(['week', 'month', 'year'])}.")
    else:
        n = rng.randrange(3, 10)
        s.append(f"They wanted to bake {NUMBERS[n]} cakes for the {rng.choice(['fair', 'party', 'school', 'neighbors'])}, but they had only enough {rng.choice(['flour', 'sugar', 'butter'])} for {NUMBERS[n - 2]}.")
        s.append(f"{friend} went to the market and came back with more.")
        s.append(f"In the end they baked {NUMBERS[n]} cakes, and everyone said they were {rng.choice(['delicious', 'wonderful', 'the best cakes in ' + the_place])}.")
    s.append(rng.choice([f"That night, {name} went to bed {rng.choice(FEELINGS)} and {rng.choice(['tired', 'full', 'happy'])}.",
                         f"The end.", f"{name} and {friend} stayed friends for the rest of their lives.",
                         f"And the {animal} said \"{sound}\" one more time."]))
    return " ".join(s)


def dialogue(rng: random.Random) -> str:
    p1, he1, _, his1 = person(rng)
    p2, he2, _, _ = person(rng, (p1,))
    thing = rng.choice(THINGS)
    food = rng.choice(FOODS)
    where = rng.choice(CONTAINERS)
    lines = [f"\"Good {rng.choice(['morning', 'afternoon', 'evening'])}, {p2},\" said {p1}.",
             f"\"Hello, {p1}. How are you today?\" asked {p2}.",
             f"\"I am {rng.choice(FEELINGS)},\" said {p1}. \"I lost my {thing}.\"",
             f"\"Did you look {where}?\" asked {p2}.",
             rng.choice([f"\"Yes, and it was not there,\" said {p1}.", f"\"No, I did not,\" said {p1}, and {he1} went to look. The {thing} was {where}."]),
             f"\"Would you like some {food}?\" asked {p2}. \"I made them this morning.\"" if food.endswith("s") else
             f"\"Would you like some {food}?\" asked {p2}. \"I made it this morning.\"",
             f"\"Thank you, {p2},\" said {p1}. \"You are very kind.\""]
    return " ".join(lines)


def letter(rng: random.Random) -> str:
    writer, _, _, _ = person(rng)
    reader, _, _, _ = person(rng, (writer,))
    month = rng.choice(MONTHS)
    place, the_place = rng.choice(PLACES)
    game = rng.choice(GAMES)
    return " ".join([
        f"Dear {reader},", f"I hope you are well. It is {month} now, and it is {SEASON_OF[month]} here in {the_place}.",
        f"The weather has been {rng.choice(WEATHER)} all week.",
        f"Yesterday I went to {rng.choice(SPOTS)} and saw {NUMBERS[rng.randrange(2, 13)]} {ANIMALS[rng.choice(list(ANIMALS))][0]}.",
        f"Next {rng.choice(DAYS)} I want to {game}. Would you like to come with me?",
        f"Please write back soon and tell me about your {rng.choice(['school', 'garden', 'family', 'trip', 'new house'])}.",
        f"Love, {writer}"])


def weather_diary(rng: random.Random) -> str:
    town = rng.choice(["Millbrook", "Ashford", "Greenvale", "Stonebridge", "Riverton", "Oakfield", "Westport", "Fernhill"])
    start = rng.randrange(7)
    month = rng.choice(MONTHS)
    s = [f"This is the weather diary of {town} for one week in {month}."]
    for i in range(rng.randrange(3, 7)):
        day = DAYS[(start + i) % 7]
        w = rng.choice(WEATHER)
        s.append(f"On {day} it was {w}. {WEATHER_NOTE[w]}")
    s.append(f"It was a {rng.choice(['typical', 'strange', 'lovely', 'long'])} week for {SEASON_OF[month]}.")
    return " ".join(s)


def animal_facts(rng: random.Random) -> str:
    s = []
    for animal in rng.sample(list(ANIMALS), rng.randrange(2, 5)):
        plural, sound, home, food, fact = ANIMALS[animal]
        s.append(rng.choice([
            f"{cap(a(animal))} says \"{sound}\". {cap(plural)} live in {home} and eat {food}.",
            f"{cap(plural)} eat {food} and live in {home}. You can hear them say \"{sound}\".",
            f"What does {a(animal)} say? {cap(a(animal))} says \"{sound}\"."]))
        s.append(cap(fact) + ".")
    return " ".join(s)


def recipe(rng: random.Random) -> str:
    dish = rng.choice(list(DISHES))
    parts = DISHES[dish]
    n = rng.randrange(2, 7)
    s = [f"How to make {dish} for {NUMBERS[n]} people.", f"You need {', '.join(parts[:-1])} and {parts[-1]}."]
    order = ["First", "Then", "Next", "After that"]
    for word, part in zip(order, rng.sample(parts, len(parts))):
        s.append(f"{word}, {rng.choice(STEP_VERBS)} the {part}.")
    s.append(f"Finally, {rng.choice(['serve it warm', 'let it cool for an hour', 'serve it cold', 'share it with friends'])}.")
    return " ".join(s)


def calendar(rng: random.Random) -> str:
    s = []
    for _ in range(rng.randrange(3, 6)):
        kind = rng.randrange(4)
        if kind == 0:
            i = rng.randrange(7)
            s.append(f"The day after {DAYS[i]} is {DAYS[(i + 1) % 7]}.")
        elif kind == 1:
            i = rng.randrange(12)
            s.append(f"The month after {MONTHS[i]} is {MONTHS[(i + 1) % 12]}. {MONTHS[i]} is in {SEASON_OF[MONTHS[i]]}.")
        elif kind == 2:
            i = rng.randrange(3)
            s.append("The days of the week are " + ", ".join(DAYS[:-1]) + " and Sunday." if i == 0 else
                     f"There are seven days in a week and twelve months in a year.")
        else:
            thing, color = rng.choice(COLOR_FACTS)
            s.append(f"{cap(thing)} is {color}.")
    return " ".join(s)


def sums(rng: random.Random) -> str:
    name, he, _, his = person(rng)
    s = []
    for _ in range(rng.randrange(2, 5)):
        x, y = rng.randrange(1, 11), rng.randrange(1, 11)
        food = rng.choice(FOODS)
        if rng.random() < 0.5:
            s.append(f"{name} had {NUMBERS[x]} {food} and got {NUMBERS[y]} more. Now {he} has {NUMBERS[x + y]} {food}.")
        else:
            x, y = max(x, y), min(x, y)
            s.append(f"{name} had {NUMBERS[x]} {food} and gave {NUMBERS[y]} away. Now {he} has {NUMBERS[x - y]} {food}.")
    a_, b_ = rng.randrange(0, 11), rng.randrange(0, 11)
    s.append(f"{cap(NUMBERS[a_])} plus {NUMBERS[b_]} is {NUMBERS[a_ + b_]}.")
    k = rng.randrange(1, 10)
    s.append(f"Counting from {NUMBERS[k]}: " + ", ".join(NUMBERS[k:k + 5]) + ".")
    return " ".join(s)


KINDS = [(story, 8), (dialogue, 3), (letter, 2), (weather_diary, 2), (animal_facts, 2), (recipe, 2),
         (calendar, 1), (sums, 2)]


def generate(size_bytes: int, seed: int = SEED) -> str:
    """Paragraphs separated by blank lines until the text reaches ``size_bytes`` (UTF-8)."""
    rng = random.Random(seed)
    makers = [maker for maker, weight in KINDS for _ in range(weight)]
    paragraphs, total = [], 0
    while total < size_bytes:
        paragraph = rng.choice(makers)(rng)
        paragraphs.append(paragraph)
        total += len(paragraph.encode("utf-8")) + 2
    return "\n\n".join(paragraphs) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path(__file__).resolve().parent)
    parser.add_argument("--kb", type=int, default=DEFAULT_KB)
    args = parser.parse_args(argv)
    path = args.out / FILE_NAME
    path.write_text(generate(args.kb * 1000), encoding="utf-8")
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
